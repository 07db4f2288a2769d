//! A description of a product (or a course): written in a small Markdown
//! subset, kept as written and rendered once, when it is set, to HTML that
//! is safe to insert into a page as it is.
//!
//! The subset: paragraphs and line breaks, **strong**, *emphasis*,
//! ~~strikethrough~~, `code` and code blocks, bulleted and numbered lists,
//! block quotes, rules, headings (`#` renders as a level-2 heading: the page
//! has its own level 1) and links (http, https, mailto; opened with
//! `rel="nofollow noopener noreferrer"`). Raw HTML is shown as the text it
//! is; images are dropped (a description loads nothing from elsewhere). The
//! HTML goes through `ammonia` with exactly these tags allowed, so whatever
//! the renderer emits, nothing else reaches a page.

use std::collections::HashSet;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DomainError;

/// Longest description source, in characters.
pub const MAX_DESCRIPTION: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Description {
    /// As written (the Markdown subset).
    pub markdown: String,
    /// Rendered and sanitized: safe to insert into a page.
    pub html: String,
}

const TAGS: [&str; 18] = [
    "p",
    "br",
    "strong",
    "em",
    "del",
    "code",
    "pre",
    "ul",
    "ol",
    "li",
    "blockquote",
    "hr",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "a",
];

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH
}

/// Checks and renders a description: `None` for an empty one.
pub fn render(markdown: &str) -> Result<Option<Description>, DomainError> {
    if markdown.chars().count() > MAX_DESCRIPTION {
        return Err(DomainError::invalid(
            "description",
            format!("description must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let markdown = markdown.trim();
    if markdown.is_empty() {
        return Ok(None);
    }
    if markdown
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(DomainError::invalid(
            "description",
            "description must not contain control characters",
        ));
    }
    let events = Parser::new_ext(markdown, options()).filter_map(|e| match e {
        // Raw HTML is text here.
        Event::Html(h) | Event::InlineHtml(h) => Some(Event::Text(h)),
        // The page has its own level-1 heading.
        Event::Start(Tag::Heading {
            level: HeadingLevel::H1,
            id,
            classes,
            attrs,
        }) => Some(Event::Start(Tag::Heading {
            level: HeadingLevel::H2,
            id,
            classes,
            attrs,
        })),
        Event::End(TagEnd::Heading(HeadingLevel::H1)) => {
            Some(Event::End(TagEnd::Heading(HeadingLevel::H2)))
        }
        // Images load from elsewhere: dropped with their alt text.
        Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
        other => Some(other),
    });
    let mut raw = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut raw, events);
    let html = ammonia::Builder::default()
        .tags(HashSet::from(TAGS))
        .generic_attributes(HashSet::new())
        .tag_attributes([("a", HashSet::from(["href"]))].into_iter().collect())
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("nofollow noopener noreferrer"))
        .clean(&raw)
        .to_string();
    Ok(Some(Description {
        markdown: markdown.to_owned(),
        html,
    }))
}

impl Description {
    /// The words of the description, without its markup (for search).
    pub fn plain_text(&self) -> String {
        let mut out = String::new();
        for e in Parser::new_ext(&self.markdown, options()) {
            let piece: Option<CowStr> = match e {
                Event::Text(t) | Event::Code(t) | Event::Html(t) | Event::InlineHtml(t) => Some(t),
                Event::SoftBreak | Event::HardBreak => Some(" ".into()),
                // Blocks are apart; inline markup is not.
                Event::End(
                    TagEnd::Paragraph
                    | TagEnd::Heading(_)
                    | TagEnd::Item
                    | TagEnd::BlockQuote(_)
                    | TagEnd::CodeBlock,
                ) => Some(" ".into()),
                _ => None,
            };
            if let Some(p) = piece {
                out.push_str(&p);
            }
        }
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(md: &str) -> String {
        render(md).unwrap().unwrap().html
    }

    #[test]
    fn the_subset_renders() {
        assert_eq!(
            html("# Soft\n\n**Cotton**, *light* and ~~old~~ `new`.\n\n- S\n- M\n\n1. wash\n\n> cool\n\n---"),
            "<h2>Soft</h2>\n<p><strong>Cotton</strong>, <em>light</em> and <del>old</del> <code>new</code>.</p>\n<ul>\n<li>S</li>\n<li>M</li>\n</ul>\n<ol>\n<li>wash</li>\n</ol>\n<blockquote>\n<p>cool</p>\n</blockquote>\n<hr>\n"
        );
        assert_eq!(
            html("[size guide](https://example.com/sizes)"),
            "<p><a href=\"https://example.com/sizes\" rel=\"nofollow noopener noreferrer\">size guide</a></p>\n"
        );
    }

    #[test]
    fn nothing_unsafe_reaches_the_html() {
        for (md, absent) in [
            ("<script>alert(1)</script>", "<script"),
            ("hi <img src=x onerror=alert(1)>", "<img"),
            ("[x](javascript:alert(1))", "javascript:"),
            ("![a](https://tracker.example/p.png)", "tracker.example"),
            ("<a href=\"https://e.x\" onclick=\"steal()\">x</a>", "<a "),
            ("<div style=\"position:fixed\">x</div>", "<div"),
            ("[x](data:text/html;base64,PHNjcmlwdD4=)", "data:"),
        ] {
            let out = html(md);
            assert!(!out.contains(absent), "{md:?} gave {out:?}");
        }
        // Raw HTML is shown as text, not dropped.
        assert!(html("<b>bold</b>").contains("&lt;b&gt;bold&lt;/b&gt;"));
    }

    #[test]
    fn the_source_is_kept_and_bounds_are_checked() {
        let d = render("  *Hi*  \n").unwrap().unwrap();
        assert_eq!(d.markdown, "*Hi*");
        assert_eq!(d.plain_text(), "Hi");
        assert_eq!(render(" \n ").unwrap(), None);
        assert!(render(&"a".repeat(MAX_DESCRIPTION)).unwrap().is_some());
        assert!(render(&"a".repeat(MAX_DESCRIPTION + 1)).is_err());
        assert!(render("a\u{7}b").is_err());
        assert_eq!(
            render("# Mat\n\nNon-slip, **6 mm**.\n\n- blue\n- red")
                .unwrap()
                .unwrap()
                .plain_text(),
            "Mat Non-slip, 6 mm. blue red"
        );
    }
}
