//! The category tree: admins arrange it; products name a category by id;
//! a listing or search by a category finds its whole subtree.
//!
//! A category's `slug` is fixed when it is made (unique, the stable key a
//! product's `category` text carries); its name, parent and position may
//! change. The tree is bounded (`MAX_CATEGORIES`, `MAX_DEPTH`) and never
//! has a cycle.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_text, DomainError};

/// Categories one platform may have.
pub const MAX_CATEGORIES: usize = 2_000;
/// Levels below the roots (a root is depth 0).
pub const MAX_DEPTH: usize = 5;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Category {
    pub id: String,
    /// Lowercase letters, digits and `-`; unique; fixed once made.
    pub slug: String,
    pub name: String,
    pub parent_id: Option<String>,
    /// Order among its siblings (then by name).
    pub position: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryInput {
    /// 1 to 60 of `a-z`, `0-9`, `-`.
    #[schema(pattern = "^[a-z0-9-]{1,60}$")]
    pub slug: String,
    pub name: String,
    pub parent_id: Option<String>,
    #[serde(default)]
    pub position: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryPatch {
    pub name: Option<String>,
    /// A category id moves it under that one; `null` makes it a root.
    #[serde(default, deserialize_with = "super::catalog::present")]
    #[schema(value_type = Option<String>)]
    pub parent_id: Option<Option<String>>,
    pub position: Option<u32>,
}

/// The whole tree, by id.
pub type Tree = BTreeMap<String, Category>;

fn check_slug(slug: &str) -> Result<String, DomainError> {
    let ok = (1..=60).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(slug.to_owned())
    } else {
        Err(DomainError::invalid(
            "slug",
            "slug must be 1 to 60 of a-z, 0-9 and -",
        ))
    }
}

/// Depth of `id` (a root is 0), following parents.
fn depth(tree: &Tree, id: &str) -> usize {
    let mut d = 0;
    let mut at = tree.get(id).and_then(|c| c.parent_id.as_deref());
    while let Some(p) = at {
        d += 1;
        at = tree.get(p).and_then(|c| c.parent_id.as_deref());
        if d > MAX_CATEGORIES {
            break;
        }
    }
    d
}

/// Deepest level below `id` (0: a leaf).
fn height(tree: &Tree, id: &str) -> usize {
    tree.values()
        .filter(|c| c.parent_id.as_deref() == Some(id))
        .map(|c| 1 + height(tree, &c.id))
        .max()
        .unwrap_or(0)
}

/// `parent` may hold `id` (with its subtree): it exists, is not `id` or
/// below it, and the subtree stays within `MAX_DEPTH`.
fn check_parent(tree: &Tree, id: &str, parent: Option<&str>) -> Result<(), DomainError> {
    let Some(parent) = parent else {
        return Ok(());
    };
    if !tree.contains_key(parent) {
        return Err(DomainError::invalid("parent_id", "no such category"));
    }
    if subtree(tree, id).contains(parent) {
        return Err(DomainError::invalid(
            "parent_id",
            "a category cannot go under itself or one of its own",
        ));
    }
    if depth(tree, parent) + 1 + height(tree, id) > MAX_DEPTH {
        return Err(DomainError::invalid(
            "parent_id",
            format!("the tree is at most {} levels deep", MAX_DEPTH + 1),
        ));
    }
    Ok(())
}

/// A new category `id` in `tree`.
pub fn create(
    tree: &Tree,
    id: &str,
    input: &CategoryInput,
    now: DateTime<Utc>,
) -> Result<Category, DomainError> {
    if tree.len() >= MAX_CATEGORIES {
        return Err(DomainError::conflict(
            "category_limit",
            format!("there are at most {MAX_CATEGORIES} categories"),
        ));
    }
    let slug = check_slug(&input.slug)?;
    if tree.values().any(|c| c.slug == slug) {
        return Err(DomainError::conflict(
            "slug_taken",
            "another category has this slug",
        ));
    }
    check_parent(tree, id, input.parent_id.as_deref())?;
    Ok(Category {
        id: id.to_owned(),
        slug,
        name: check_text("name", &input.name, 80)?,
        parent_id: input.parent_id.clone(),
        position: input.position,
        created_at: now,
        updated_at: now,
    })
}

/// Category `id` with `patch` applied.
pub fn update(
    tree: &Tree,
    id: &str,
    patch: &CategoryPatch,
    now: DateTime<Utc>,
) -> Result<Category, DomainError> {
    let current = tree.get(id).ok_or(DomainError::NotFound("category"))?;
    let parent_id = match &patch.parent_id {
        Some(p) => p.clone(),
        None => current.parent_id.clone(),
    };
    check_parent(tree, id, parent_id.as_deref())?;
    Ok(Category {
        name: match &patch.name {
            Some(n) => check_text("name", n, 80)?,
            None => current.name.clone(),
        },
        parent_id,
        position: patch.position.unwrap_or(current.position),
        updated_at: now,
        ..current.clone()
    })
}

/// Whether `id` may go: it exists and has no children.
pub fn check_delete(tree: &Tree, id: &str) -> Result<(), DomainError> {
    if !tree.contains_key(id) {
        return Err(DomainError::NotFound("category"));
    }
    if tree.values().any(|c| c.parent_id.as_deref() == Some(id)) {
        return Err(DomainError::conflict(
            "has_children",
            "move or delete its subcategories first",
        ));
    }
    Ok(())
}

/// `id` and every category below it.
pub fn subtree(tree: &Tree, id: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut todo = vec![id.to_owned()];
    while let Some(at) = todo.pop() {
        if !out.insert(at.clone()) {
            continue;
        }
        todo.extend(
            tree.values()
                .filter(|c| c.parent_id.as_deref() == Some(at.as_str()))
                .map(|c| c.id.clone()),
        );
    }
    out
}

/// The tree in reading order: each root then its subtree, siblings by
/// position then name.
pub fn ordered(tree: &Tree) -> Vec<Category> {
    fn walk(tree: &Tree, parent: Option<&str>, out: &mut Vec<Category>) {
        let mut kids: Vec<&Category> = tree
            .values()
            .filter(|c| c.parent_id.as_deref() == parent)
            .collect();
        kids.sort_by(|a, b| (a.position, &a.name).cmp(&(b.position, &b.name)));
        for k in kids {
            out.push(k.clone());
            walk(tree, Some(&k.id), out);
        }
    }
    let mut out = Vec::with_capacity(tree.len());
    walk(tree, None, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(tree: &mut Tree, id: &str, slug: &str, parent: Option<&str>) -> Result<(), DomainError> {
        let input = CategoryInput {
            slug: slug.into(),
            name: slug.to_uppercase(),
            parent_id: parent.map(str::to_owned),
            position: 0,
        };
        let c = create(tree, id, &input, Utc::now())?;
        tree.insert(id.into(), c);
        Ok(())
    }

    #[test]
    fn subtrees_follow_moves_and_cycles_are_refused() {
        let mut t = Tree::new();
        add(&mut t, "sport", "sport", None).unwrap();
        add(&mut t, "yoga", "yoga", Some("sport")).unwrap();
        add(&mut t, "mats", "yoga-mats", Some("yoga")).unwrap();
        add(&mut t, "home", "home", None).unwrap();
        let ids = |s: HashSet<String>| {
            let mut v: Vec<String> = s.into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(ids(subtree(&t, "sport")), ["mats", "sport", "yoga"]);
        assert_eq!(ids(subtree(&t, "mats")), ["mats"]);
        // Under itself or its own child: refused.
        for parent in ["yoga", "mats"] {
            let patch = CategoryPatch {
                parent_id: Some(Some(parent.into())),
                ..Default::default()
            };
            assert!(update(&t, "yoga", &patch, Utc::now()).is_err(), "{parent}");
        }
        let patch = CategoryPatch {
            parent_id: Some(Some("home".into())),
            ..Default::default()
        };
        let moved = update(&t, "yoga", &patch, Utc::now()).unwrap();
        t.insert("yoga".into(), moved);
        assert_eq!(ids(subtree(&t, "home")), ["home", "mats", "yoga"]);
        assert_eq!(ids(subtree(&t, "sport")), ["sport"]);
        assert!(check_delete(&t, "home").is_err(), "has children");
        assert!(check_delete(&t, "mats").is_ok());
    }

    #[test]
    fn slugs_are_unique_and_well_formed_and_depth_is_bounded() {
        let mut t = Tree::new();
        add(&mut t, "a", "a", None).unwrap();
        assert!(add(&mut t, "b", "a", None).is_err(), "taken");
        for bad in ["", "Yoga", "yo ga", "yoga/x", &"x".repeat(61)] {
            assert!(add(&mut t, "b", bad, None).is_err(), "{bad:?}");
        }
        let mut parent = "a".to_owned();
        for i in 0..MAX_DEPTH {
            let id = format!("d{i}");
            add(&mut t, &id, &id, Some(&parent)).unwrap();
            parent = id;
        }
        assert!(add(&mut t, "deep", "deep", Some(&parent)).is_err());
        assert!(add(&mut t, "nope", "nope", Some("missing")).is_err());
    }

    #[test]
    fn reading_order_is_depth_first_by_position_then_name() {
        let mut t = Tree::new();
        add(&mut t, "b", "b", None).unwrap();
        add(&mut t, "a", "a", None).unwrap();
        add(&mut t, "a2", "a2", Some("a")).unwrap();
        add(&mut t, "a1", "a1", Some("a")).unwrap();
        let order: Vec<String> = ordered(&t).into_iter().map(|c| c.id).collect();
        assert_eq!(order, ["a", "a1", "a2", "b"]);
    }
}
