use super::*;
use chrono::Duration;

fn caller(id: &str, role: Role) -> Caller {
    Caller {
        user_id: id.into(),
        role,
    }
}

fn draft(stars: u8, text: &str) -> Draft {
    check_draft(&DeliveryReviewInput {
        stars,
        text: text.into(),
        images: vec![],
    })
    .unwrap()
}

fn record(policy: &ReviewPolicy, now: DateTime<Utc>) -> ReviewRecord {
    let subject = Subject {
        kind: ReviewKind::Product,
        subject_id: "p1".into(),
        order_id: "o1".into(),
        shop_id: "s1".into(),
        merchant_id: "m".into(),
        verified: true,
    };
    ReviewRecord::new(
        "r1",
        subject,
        &caller("c", Role::Customer),
        "Cam C.".into(),
        draft(4, "good"),
        policy,
        now,
    )
}

#[test]
fn an_author_is_shown_by_first_name_and_initial() {
    assert_eq!(display_name("Lan Nguyen"), "Lan N.");
    assert_eq!(display_name("  Nguyen  Van   An "), "Nguyen A.");
    assert_eq!(display_name("Cher"), "Cher");
    assert_eq!(display_name(" "), "A customer");
    assert_eq!(display_name(&"x".repeat(90)).chars().count(), 40);
}

#[test]
fn the_content_rules_refuse_what_they_must_and_keep_what_they_may() {
    let input = |stars: u8, text: &str, images: &[&str]| DeliveryReviewInput {
        stars,
        text: text.into(),
        images: images.iter().map(|s| s.to_string()).collect(),
    };
    for bad in [
        input(0, "", &[]),
        input(6, "", &[]),
        input(5, "a\u{0}b", &[]),
        input(5, "a\u{202e}b", &[]),
        input(5, &"x".repeat(MAX_REVIEW_TEXT + 1), &[]),
        input(5, "", &["https://elsewhere.example/a.jpg"]),
        input(5, "", &["//elsewhere.example/a.jpg"]),
        input(5, "", &["/a b.jpg"]),
        input(5, "", &["relative.jpg"]),
        input(5, "", &["/a.jpg"; MAX_IMAGES + 1]),
    ] {
        assert!(check_draft(&bad).is_err(), "{bad:?} was taken");
    }
    let ok = check_draft(&input(
        5,
        "  Fits well.\r\nFast delivery.  ",
        &["/media/a.jpg"],
    ))
    .unwrap();
    assert_eq!(ok.text, "Fits well.\nFast delivery.");
    assert_eq!(check_draft(&input(3, "   ", &[])).unwrap().text, "");
}

#[test]
fn one_review_per_order_line_shop_and_delivery() {
    let a = legacy_review_id("o1", ReviewKind::Product, "p1");
    assert_eq!(a, legacy_review_id("o1", ReviewKind::Product, "p1"));
    assert!(uuid::Uuid::try_parse(&a).is_ok());
    let others = [
        legacy_review_id("o1", ReviewKind::Product, "p2"),
        legacy_review_id("o2", ReviewKind::Product, "p1"),
        legacy_review_id("o1", ReviewKind::Shop, "p1"),
        legacy_review_id("o1", ReviewKind::Shipper, "p1"),
    ];
    assert!(others.iter().all(|o| o != &a));
}

#[test]
fn the_author_edits_within_the_window_and_manual_moderation_checks_it_again() {
    let now = Utc::now();
    let manual = ReviewPolicy {
        auto_approve: false,
        ..ReviewPolicy::default()
    };
    let mut rec = record(&ReviewPolicy::default(), now);
    assert_eq!(rec.review.status, ReviewStatus::Approved);
    assert_eq!((rec.revision, rec.counted), (1, 0));
    let author = caller("c", Role::Customer);
    assert!(matches!(
        rec.edit(&caller("x", Role::Customer), draft(1, "bad"), &manual, now),
        Err(DomainError::Forbidden(_))
    ));
    // Nothing changed: nothing to write.
    assert_eq!(
        rec.edit(&author, draft(4, "good"), &manual, now).unwrap(),
        None
    );
    let edited = rec
        .edit(&author, draft(2, "worse"), &manual, now)
        .unwrap()
        .unwrap();
    assert_eq!((edited.stars, edited.status), (2, ReviewStatus::Pending));
    rec.take(edited);
    assert_eq!(rec.revision, 2, "what it counts changed");
    // An edit of a review held for moderation leaves it held, even under
    // auto moderation.
    let held = rec
        .edit(&author, draft(3, "fair"), &ReviewPolicy::default(), now)
        .unwrap()
        .unwrap();
    assert_eq!(held.status, ReviewStatus::Pending);
    let late = now + Duration::seconds(ReviewPolicy::default().edit_window_secs as i64 + 1);
    assert!(matches!(
        rec.edit(&author, draft(5, "better"), &manual, late),
        Err(DomainError::Conflict {
            code: "edit_window_closed",
            ..
        })
    ));
}

#[test]
fn the_merchant_replies_once() {
    let now = Utc::now();
    let mut rec = record(&ReviewPolicy::default(), now);
    let merchant = caller("m", Role::Merchant);
    assert!(matches!(
        rec.reply(&caller("other", Role::Merchant), "thanks".into(), now),
        Err(DomainError::Forbidden(_))
    ));
    let replied = rec.reply(&merchant, "thanks".into(), now).unwrap();
    rec.take(replied);
    assert_eq!(rec.revision, 1, "a reply does not change what it counts");
    assert!(matches!(
        rec.reply(&merchant, "again".into(), now),
        Err(DomainError::Conflict {
            code: "already_replied",
            ..
        })
    ));
}

#[test]
fn reports_count_each_person_once_and_the_threshold_sends_it_back_to_moderation() {
    let now = Utc::now();
    let policy = ReviewPolicy {
        report_threshold: 2,
        ..ReviewPolicy::default()
    };
    let mut rec = record(&policy, now);
    assert!(matches!(
        rec.report(&caller("c", Role::Customer), &policy, now),
        Err(DomainError::Conflict {
            code: "own_review",
            ..
        })
    ));
    let first = rec
        .report(&caller("r1", Role::Customer), &policy, now)
        .unwrap()
        .unwrap();
    assert_eq!(first.status, ReviewStatus::Approved);
    rec.reporters.push("r1".into());
    rec.take(first);
    assert_eq!(
        rec.report(&caller("r1", Role::Customer), &policy, now)
            .unwrap(),
        None
    );
    let second = rec
        .report(&caller("r2", Role::Customer), &policy, now)
        .unwrap()
        .unwrap();
    assert_eq!((second.reports, second.status), (2, ReviewStatus::Pending));
    rec.take(second);
    assert_eq!(rec.review.counts(), None);
    assert_eq!(rec.revision, 2);
}

#[test]
fn only_admins_moderate_and_not_into_the_same_state() {
    let now = Utc::now();
    let rec = record(&ReviewPolicy::default(), now);
    assert!(matches!(
        rec.moderate(
            &caller("m", Role::Merchant),
            ReviewStatus::Rejected,
            None,
            now
        ),
        Err(DomainError::Forbidden(_))
    ));
    let admin = caller("a", Role::Admin);
    assert!(matches!(
        rec.moderate(&admin, ReviewStatus::Approved, None, now),
        Err(DomainError::Conflict {
            code: "already_approved",
            ..
        })
    ));
    let r = rec
        .moderate(&admin, ReviewStatus::Rejected, Some("spam".into()), now)
        .unwrap();
    assert_eq!(
        (r.status, r.moderation_note.as_deref()),
        (ReviewStatus::Rejected, Some("spam"))
    );
}

#[test]
fn a_summary_ignores_repeated_and_older_revisions() {
    let mut r = Ratings::default();
    r.set(
        "a",
        Held {
            revision: 1,
            stars: Some(5),
        },
    );
    r.set(
        "a",
        Held {
            revision: 1,
            stars: Some(5),
        },
    );
    r.set(
        "b",
        Held {
            revision: 2,
            stars: Some(1),
        },
    );
    // A settlement that read revision 1 of `b` arrives late.
    r.set(
        "b",
        Held {
            revision: 1,
            stars: Some(4),
        },
    );
    assert_eq!(r.summary().distribution, [1, 0, 0, 0, 1]);
    assert_eq!(r.summary().average, 3.0);
    r.set(
        "a",
        Held {
            revision: 2,
            stars: None,
        },
    );
    assert_eq!((r.summary().count, r.summary().average), (1, 1.0));
    assert_eq!(summarize("x", [0; 5]).average, 0.0);
    assert_eq!(summarize("x", [0, 0, 1, 0, 2]).average, 4.33);
}

#[test]
fn an_edit_never_lifts_moderation() {
    let now = Utc::now();
    let auto = ReviewPolicy::default();
    let admin = caller("a", Role::Admin);
    let author = caller("c", Role::Customer);
    let mut rec = record(&auto, now);
    let rejected = rec
        .moderate(&admin, ReviewStatus::Rejected, Some("abuse".into()), now)
        .unwrap();
    rec.take(rejected);
    let edited = rec
        .edit(&author, draft(5, "all lovely now"), &auto, now)
        .unwrap()
        .unwrap();
    assert_eq!(edited.status, ReviewStatus::Rejected);
    assert_eq!(edited.moderation_note.as_deref(), Some("abuse"));
    assert_eq!(edited.counts(), None);
    // Approved again by an admin only, and then an edit under auto
    // moderation is approved as before.
    rec.take(edited);
    let approved = rec
        .moderate(&admin, ReviewStatus::Approved, None, now)
        .unwrap();
    rec.take(approved);
    let edited = rec
        .edit(&author, draft(4, "fine"), &auto, now)
        .unwrap()
        .unwrap();
    assert_eq!(edited.status, ReviewStatus::Approved);
}

#[test]
fn a_reapproval_resets_the_reports_and_the_shops_merchant_cannot_report() {
    let now = Utc::now();
    let policy = ReviewPolicy {
        report_threshold: 2,
        ..ReviewPolicy::default()
    };
    let mut rec = record(&policy, now);
    assert!(matches!(
        rec.report(&caller("m", Role::Merchant), &policy, now),
        Err(DomainError::Forbidden(_))
    ));
    for r in ["r1", "r2"] {
        let reported = rec
            .report(&caller(r, Role::Customer), &policy, now)
            .unwrap()
            .unwrap();
        rec.reporters.push(r.into());
        rec.take(reported);
    }
    assert_eq!(
        (rec.review.reports, rec.review.status),
        (2, ReviewStatus::Pending)
    );
    let approved = rec
        .moderate(&caller("a", Role::Admin), ReviewStatus::Approved, None, now)
        .unwrap();
    assert_eq!(approved.reports, 0, "counted from the approval");
    rec.take(approved);
    // One new report does not hide it again; the old reporters count once, ever.
    assert_eq!(
        rec.report(&caller("r1", Role::Customer), &policy, now)
            .unwrap(),
        None
    );
    let one = rec
        .report(&caller("r3", Role::Customer), &policy, now)
        .unwrap()
        .unwrap();
    assert_eq!((one.reports, one.status), (1, ReviewStatus::Approved));
}

#[test]
fn who_sees_an_approved_review_depends_on_what_it_reviews() {
    let mut r = record(&ReviewPolicy::default(), Utc::now()).review;
    r.status = ReviewStatus::Approved;
    let sees = |r: &Review, who: Option<Caller>| r.visible_to(who.as_ref(), "m");
    // A product's: everyone.
    assert!(sees(&r, None));
    assert!(sees(&r, Some(caller("x", Role::Customer))));
    // A shipper's: merchants, admins, the shipper and the author only.
    r.kind = ReviewKind::Shipper;
    r.subject_id = "shipper".into();
    for (who, want) in [
        (None, false),
        (Some(caller("x", Role::Customer)), false),
        (Some(caller("y", Role::Shipper)), false),
        (Some(caller("z", Role::Merchant)), true),
        (Some(caller("a", Role::Admin)), true),
        (Some(caller("shipper", Role::Shipper)), true),
        (Some(caller("c", Role::Customer)), true),
    ] {
        assert_eq!(sees(&r, who.clone()), want, "{who:?}");
    }
    // Not approved: only those involved.
    r.status = ReviewStatus::Rejected;
    assert!(!sees(&r, Some(caller("z", Role::Merchant))));
    assert!(sees(&r, Some(caller("shipper", Role::Shipper))));
}
