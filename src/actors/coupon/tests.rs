//! The coupon's rules, one test each.

use super::*;
use crate::domain::pricing::DiscountKind;
use crate::domain::Role;

fn run(state: &CouponState, cmd: CouponCommand) -> Result<(CouponState, u64), DomainError> {
    let (events, reply) = CouponEntity::decide(
        state,
        cmd,
        &Ctx {
            id: "SAVE10",
            now: Utc::now(),
        },
    )?;
    Ok((CouponEntity::evolve(state, &events), reply.discount))
}

fn shop() -> Shop {
    let now = Utc::now();
    Shop {
        id: "s".into(),
        owner_id: "m".into(),
        name: "S".into(),
        location: crate::domain::GeoPoint { lat: 0.0, lng: 0.0 },
        address: "a".into(),
        hidden: None,
        created_at: now,
        updated_at: now,
    }
}

fn input() -> CouponInput {
    CouponInput {
        code: "save10".into(),
        kind: DiscountKind::Percentage,
        value: 10,
        min_spend: 0,
        expires_at: None,
        per_user_limit: None,
        global_limit: None,
        voucher: false,
    }
}

fn created(global: Option<u32>, per_user: u32) -> CouponState {
    let input = CouponInput {
        per_user_limit: Some(per_user),
        global_limit: global,
        ..input()
    };
    let create = CouponCommand::Create {
        caller: owner(),
        shop: Box::new(shop()),
        input,
    };
    run(&CouponState::default(), create).unwrap().0
}

fn redeem(user: &str, order: &str) -> CouponCommand {
    CouponCommand::Redeem {
        user_id: user.into(),
        order_id: order.into(),
        base: Base::items(1000),
    }
}

#[test]
fn limits_idempotency_and_release() {
    let s = created(Some(2), 1);
    let (s, off) = run(&s, redeem("u1", "o1")).unwrap();
    assert_eq!(off, 100);
    let (again, _) = run(&s, redeem("u1", "o1")).unwrap();
    assert_eq!(again, s, "the same order redeems once");
    assert!(matches!(
        run(&s, redeem("u1", "o2")),
        Err(DomainError::Conflict {
            code: "coupon_limit_reached",
            ..
        })
    ));
    let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
    assert!(matches!(
        run(&s, redeem("u3", "o4")),
        Err(DomainError::Conflict {
            code: "coupon_exhausted",
            ..
        })
    ));
    let (s, _) = run(
        &s,
        CouponCommand::Release {
            order_id: "o3".into(),
        },
    )
    .unwrap();
    assert_eq!(s.coupon.as_ref().unwrap().used, 1);
    assert!(
        run(&s, redeem("u3", "o4")).is_ok(),
        "a released use is available again"
    );
    assert!(normalize_code("ab").is_err());
    assert_eq!(normalize_code(" summer-25 ").unwrap(), "SUMMER-25");
}

fn owner() -> Caller {
    Caller {
        user_id: "m".into(),
        role: Role::Merchant,
    }
}

fn code(e: DomainError) -> &'static str {
    match e {
        DomainError::Conflict { code, .. } => code,
        DomainError::NotFound(_) => "not_found",
        DomainError::Forbidden(_) => "forbidden",
        DomainError::Invalid { .. } => "invalid",
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_edit_never_goes_below_the_uses_made_and_only_the_owner_edits() {
    let s = created(Some(5), 2);
    let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
    let (s, _) = run(&s, redeem("u1", "o2")).unwrap();
    let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
    let edit = |patch: CouponPatch, caller: Caller| CouponCommand::Edit { caller, patch };
    let below_global = CouponPatch {
        global_limit: Some(Some(2)),
        ..CouponPatch::default()
    };
    assert_eq!(
        code(run(&s, edit(below_global, owner())).unwrap_err()),
        "coupon_below_uses"
    );
    let below_one_customer = CouponPatch {
        per_user_limit: Some(1),
        ..CouponPatch::default()
    };
    assert_eq!(
        code(run(&s, edit(below_one_customer, owner())).unwrap_err()),
        "coupon_below_uses"
    );
    let at_the_uses = CouponPatch {
        global_limit: Some(Some(3)),
        per_user_limit: Some(2),
        ..CouponPatch::default()
    };
    let stranger = Caller {
        user_id: "x".into(),
        role: Role::Merchant,
    };
    assert_eq!(
        code(run(&s, edit(at_the_uses.clone(), stranger)).unwrap_err()),
        "forbidden"
    );
    let (edited, _) = run(&s, edit(at_the_uses.clone(), owner())).unwrap();
    assert_eq!(edited.coupon.as_ref().unwrap().global_limit, Some(3));
    assert_eq!(
        edited.coupon.as_ref().unwrap().status(Utc::now()),
        CouponStatus::Exhausted
    );
    let (again, _) = run(&edited, edit(at_the_uses, owner())).unwrap();
    assert_eq!(
        again, edited,
        "an edit that changes nothing records nothing"
    );
}

#[test]
fn paused_refuses_uses_deleted_is_gone_and_a_code_created_again_starts_afresh() {
    let s = created(None, 1);
    let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
    let (paused, _) = run(&s, CouponCommand::Pause { caller: owner() }).unwrap();
    assert_eq!(
        code(run(&paused, redeem("u2", "o2")).unwrap_err()),
        "coupon_paused"
    );
    let quote = CouponCommand::Quote {
        user_id: "u2".into(),
        base: Base::items(1000),
    };
    assert_eq!(code(run(&paused, quote).unwrap_err()), "coupon_paused");
    let (again, _) = run(&paused, CouponCommand::Pause { caller: owner() }).unwrap();
    assert_eq!(again, paused, "pausing a paused coupon records nothing");
    let (resumed, _) = run(&paused, CouponCommand::Resume { caller: owner() }).unwrap();
    assert!(run(&resumed, redeem("u2", "o2")).is_ok());

    let (deleted, _) = run(&s, CouponCommand::Delete { caller: owner() }).unwrap();
    assert_eq!(
        code(run(&deleted, redeem("u2", "o2")).unwrap_err()),
        "not_found"
    );
    let usage = CouponCommand::Usage {
        caller: owner(),
        zone: Default::default(),
    };
    assert_eq!(code(run(&deleted, usage).unwrap_err()), "not_found");
    // An order that used it, cancelled, still gives its use back.
    let (released, _) = run(
        &deleted,
        CouponCommand::Release {
            order_id: "o1".into(),
        },
    )
    .unwrap();
    assert!(released.redemptions.is_empty());
    let fresh = created(None, 1);
    let recreate = CouponCommand::Create {
        caller: owner(),
        shop: Box::new(shop()),
        input: input(),
    };
    let (back, _) = run(&deleted, recreate).unwrap();
    assert_eq!(back.coupon.as_ref().unwrap().used, 0);
    assert!(back.redemptions.is_empty() && !back.deleted);
    assert_eq!(
        back.coupon.as_ref().unwrap().code,
        fresh.coupon.unwrap().code
    );
}

#[test]
fn the_usage_report_counts_uses_net_of_cancelled_orders() {
    let s = created(Some(10), 5);
    let (s, _) = run(&s, redeem("u1", "o1")).unwrap();
    let (s, _) = run(&s, redeem("u1", "o2")).unwrap();
    let (s, _) = run(&s, redeem("u2", "o3")).unwrap();
    let (s, _) = run(
        &s,
        CouponCommand::Release {
            order_id: "o2".into(),
        },
    )
    .unwrap();
    let u = s.usage(Utc::now(), Default::default()).unwrap();
    assert_eq!(
        (u.used, u.remaining, u.customers, u.discount_total),
        (2, Some(8), 2, 200)
    );
    assert_eq!(u.days.len(), 1);
    assert_eq!((u.days[0].uses, u.days[0].discount), (2, 200));
}

fn admin() -> Caller {
    Caller {
        user_id: "a".into(),
        role: Role::Admin,
    }
}

fn collect(user: &str) -> CouponCommand {
    CouponCommand::Collect {
        user_id: user.into(),
    }
}

#[test]
fn a_voucher_is_used_only_by_who_collected_it_and_collecting_twice_changes_nothing() {
    let create = CouponCommand::Create {
        caller: owner(),
        shop: Box::new(shop()),
        input: CouponInput {
            voucher: true,
            ..input()
        },
    };
    let s = run(&CouponState::default(), create).unwrap().0;
    assert_eq!(
        code(run(&s, redeem("u1", "o1")).unwrap_err()),
        "voucher_not_collected"
    );
    let (s, _) = run(&s, collect("u1")).unwrap();
    let (again, _) = run(&s, collect("u1")).unwrap();
    assert_eq!(again, s, "collecting again records nothing");
    let (s, off) = run(&s, redeem("u1", "o1")).unwrap();
    assert_eq!(off, 100);
    // A plain coupon is not collected.
    let plain = created(None, 1);
    assert_eq!(
        code(run(&plain, collect("u1")).unwrap_err()),
        "not_a_voucher"
    );
    // A paused voucher is not collected either.
    let (paused, _) = run(&s, CouponCommand::Pause { caller: owner() }).unwrap();
    assert_eq!(
        code(run(&paused, collect("u2")).unwrap_err()),
        "coupon_paused"
    );
}

#[test]
fn only_an_admin_issues_a_platform_voucher_and_free_shipping_is_the_platforms() {
    let input = || CouponInput {
        kind: DiscountKind::FreeShipping,
        value: 20_000,
        ..input()
    };
    let by = |caller| CouponCommand::CreatePlatform {
        caller,
        input: input(),
    };
    assert!(matches!(
        run(&CouponState::default(), by(owner())).unwrap_err(),
        DomainError::Forbidden(_)
    ));
    let (s, _) = run(&CouponState::default(), by(admin())).unwrap();
    let c = s.coupon.clone().unwrap();
    assert!(c.voucher && c.shop().is_none(), "always collected, no shop");
    assert_eq!(c.list_key(), format!("{PLATFORM_KEY}|SAVE10"));
    let (s, _) = run(&s, collect("u1")).unwrap();
    let shipping = CouponCommand::Redeem {
        user_id: "u1".into(),
        order_id: "o1".into(),
        base: Base {
            items: 1_000,
            shipping: 15_000,
        },
    };
    assert_eq!(
        run(&s, shipping).unwrap().1,
        15_000,
        "the fee, under the cap"
    );
    let shop_free = CouponCommand::Create {
        caller: owner(),
        shop: Box::new(shop()),
        input: input(),
    };
    assert_eq!(
        run(&CouponState::default(), shop_free).unwrap_err().code(),
        "validation_failed"
    );
}
