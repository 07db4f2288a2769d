use super::*;

const HOUR: i64 = 3_600_000;
const HALF_LIFE: i64 = 6 * HOUR;

fn seen(product: &str, category: &str, views: u32, orders: u32) -> Activity {
    Activity {
        product_id: product.into(),
        category: category.into(),
        views,
        orders,
    }
}

#[test]
fn a_count_halves_every_half_life_and_never_grows_backwards() {
    let mut d = Decayed::default();
    d.add(8.0, 10 * HOUR, HALF_LIFE);
    assert_eq!(d.at(10 * HOUR, HALF_LIFE), 8.0);
    assert!((d.at(16 * HOUR, HALF_LIFE) - 4.0).abs() < 1e-9);
    assert!((d.at(22 * HOUR, HALF_LIFE) - 2.0).abs() < 1e-9);
    // Asked about a moment before its last addition: unchanged.
    assert_eq!(d.at(9 * HOUR, HALF_LIFE), 8.0);
}

#[test]
fn additions_in_any_order_sum_to_the_same_decayed_count() {
    let events = [(3.0, 0), (1.0, 5 * HOUR), (10.0, 2 * HOUR), (2.0, 7 * HOUR)];
    let mut forward = Decayed::default();
    for (w, t) in events {
        forward.add(w, t, HALF_LIFE);
    }
    let mut backward = Decayed::default();
    for (w, t) in events.iter().rev() {
        backward.add(*w, *t, HALF_LIFE);
    }
    let now = 9 * HOUR;
    let expected: f64 = events
        .iter()
        .map(|(w, t)| w * (-((now - t) as f64) / HALF_LIFE as f64).exp2())
        .sum();
    assert!((forward.at(now, HALF_LIFE) - expected).abs() < 1e-9);
    assert!((backward.at(now, HALF_LIFE) - expected).abs() < 1e-9);
}

#[test]
fn yesterdays_crowd_falls_behind_a_smaller_crowd_now() {
    let mut t = Trending::new(HALF_LIFE, 100);
    // Ten views twelve hours ago (two half-lives: worth 2.5 now) …
    t.record(&seen("old", "yoga", 10, 0), 0);
    // … against three views now.
    t.record(&seen("new", "yoga", 3, 0), 12 * HOUR);
    let top = t.top(None, 12 * HOUR, 10);
    assert_eq!(
        top.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["new", "old"]
    );
    assert!((top[1].score - 2.5).abs() < 1e-9);
    // Twelve hours earlier the old crowd led.
    t.record(&seen("x", "gym", 0, 0), 0);
    let then = t.top(None, 0, 10);
    assert_eq!(then[0].id, "old");
}

#[test]
fn an_order_outweighs_a_view_and_categories_sum_their_products() {
    let mut t = Trending::new(HALF_LIFE, 100);
    t.record(&seen("mat", "yoga", 5, 0), 0);
    t.record(&seen("block", "yoga", 0, 1), 0);
    t.record(&seen("bar", "gym", 12, 0), 0);
    let yoga: Vec<_> = t.top(Some("yoga"), 0, 10);
    assert_eq!(
        yoga.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["block", "mat"]
    );
    let cats = t.top_categories(0, 10);
    assert_eq!(cats[0].id, "yoga");
    assert!((cats[0].score - (5.0 + ORDER_WEIGHT)).abs() < 1e-9);
    assert_eq!(cats[1].id, "gym");
}

#[test]
fn trending_keeps_its_capacity_and_the_busiest_products() {
    let mut t = Trending::new(HALF_LIFE, 100);
    for i in 0..1_000u32 {
        // Every tenth product is busy.
        let views = if i % 10 == 0 { 50 } else { 1 };
        t.record(&seen(&format!("p{i}"), "c", views, 0), 0);
        assert!(t.len() <= 125, "grew to {} at {i}", t.len());
    }
    let top = t.top(None, 0, 100);
    let busy = top.iter().filter(|r| r.score >= 50.0).count();
    assert_eq!(busy, 100, "every busy product is kept and ranked first");
}

#[test]
fn recently_viewed_is_newest_first_each_product_once_and_bounded() {
    let mut r = RecentlyViewed::default();
    for i in 0..(RECENT_MAX as i64 + 10) {
        r.view(&format!("p{i}"), i);
    }
    assert_eq!(r.items.len(), RECENT_MAX);
    assert_eq!(r.items[0].0, format!("p{}", RECENT_MAX + 9));
    // Viewing an older one again moves it to the front, once.
    r.view("p30", 1_000);
    assert_eq!(r.items[0], ("p30".to_owned(), 1_000));
    assert_eq!(r.items.iter().filter(|(p, _)| p == "p30").count(), 1);
    assert_eq!(r.items.len(), RECENT_MAX);
    // Another node's list merges by latest view.
    r.merge([("p31".to_owned(), 2_000), ("p30".to_owned(), 5)]);
    assert_eq!(r.items[0].0, "p31");
    assert_eq!(r.items[1], ("p30".to_owned(), 1_000));
}

#[test]
fn bought_together_keeps_the_frequent_partner_among_many_rare_ones() {
    let mut p = Partners::default();
    for i in 0..1_000 {
        p.add(&format!("rare{i}"), 1);
        if i % 5 == 0 {
            p.add("frequent", 1);
        }
    }
    assert_eq!(p.counts.len(), PARTNERS_MAX);
    assert_eq!(p.top(1)[0].0, "frequent");
    // Its count is an upper bound of the true 200.
    assert!(p.counts["frequent"] >= 200);
}

#[test]
fn lists_of_several_nodes_merge_by_summing() {
    let mut a = Partners::default();
    a.add("x", 3);
    a.add("y", 1);
    let mut b = Partners::default();
    b.add("y", 5);
    let m = Partners::merged([&a, &b]);
    assert_eq!(m.top(2), vec![("y".to_owned(), 6), ("x".to_owned(), 3)]);
}

#[test]
fn a_basket_is_its_first_distinct_products() {
    let many: Vec<String> = (0..30).map(|i| format!("p{}", i % 25)).collect();
    let b = basket(many.iter().map(String::as_str));
    assert_eq!(b.len(), BASKET_MAX);
    assert_eq!(b[0], "p0");
    let mut sorted = b.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), BASKET_MAX);
    assert_eq!(basket(["a", "b", "a"]), ["a", "b"]);
}
