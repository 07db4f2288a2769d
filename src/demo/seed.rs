//! The demo's seed: its people, the first shop and its products, four
//! generated shops with 300 products, vouchers, a flash sale, a free course, views
//! and orders, and reviews of delivered orders. Everything goes through
//! the public API.

use anyhow::Context;
use serde_json::json;

use super::{Client, Login, Queue, Seeded, ADMIN_EMAIL, HOMES, METRES_PER_DEG, PASSWORD, SHOP};

fn login(role: &str, email: &str, name: &str, simulated: bool) -> Login {
    Login {
        role: role.into(),
        email: email.into(),
        name: name.into(),
        simulated,
    }
}

pub(super) fn people() -> Vec<Login> {
    vec![
        login("customer", "an@demo.surge", "An Nguyen", false),
        login("customer", "binh@demo.surge", "Binh Tran", false),
        login("merchant", "mai@demo.surge", "Mai (Mai Yoga Store)", false),
        login(
            "merchant",
            "linh@demo.surge",
            "Linh (Pilates trainer)",
            false,
        ),
        login("shipper", "hoa@demo.surge", "Hoa (shipper)", false),
        login("admin", ADMIN_EMAIL, "Admin", false),
        login(
            "shipper",
            "bot-duc@demo.surge",
            "Duc (simulated shipper)",
            true,
        ),
        login(
            "shipper",
            "bot-lan@demo.surge",
            "Lan (simulated shipper)",
            true,
        ),
        login(
            "shipper",
            "bot-minh@demo.surge",
            "Minh (simulated shipper)",
            true,
        ),
    ]
    .into_iter()
    .chain(SHOPS.iter().enumerate().map(|(i, s)| {
        login(
            "merchant",
            &format!("shop{i}@demo.surge"),
            &format!("{} (merchant)", s.0),
            true,
        )
    }))
    .collect()
}

/// More shops, at growing distances from the first (name, address, km
/// north, km east), each with `PRODUCTS_PER_SHOP` generated products and a
/// simulated merchant; all within the shippers' reach (`dispatch_radius_km`).
const SHOPS: [(&str, &str, f64, f64); 4] = [
    ("Gym Corner Hàng Bài", "40 Hang Bai, Hoan Kiem", 0.6, 0.2),
    ("Pilates House Tây Hồ", "8 Xuan Dieu, Tay Ho", 4.5, -0.8),
    ("Sport Zone Cầu Giấy", "120 Xuan Thuy, Cau Giay", 1.0, -6.5),
    (
        "Yoga Garden Long Biên",
        "15 Nguyen Van Cu, Long Bien",
        1.5,
        7.5,
    ),
];
const PRODUCTS_PER_SHOP: usize = 75;

/// The `i`-th generated product of a shop: (name, category, price, grams).
/// Names combine a kind of thing, a material or model and a colour, in
/// Vietnamese or English, so search, facets and typos have something to
/// work on.
pub fn generated_product(shop: usize, i: usize) -> (String, &'static str, u64, u64) {
    const KINDS: [(&str, &[&str]); 6] = [
        (
            "yoga",
            &[
                "Thảm yoga",
                "Gạch tập yoga",
                "Dây đai yoga",
                "Yoga mat",
                "Yoga bolster",
            ],
        ),
        (
            "pilates",
            &[
                "Vòng tập pilates",
                "Bóng pilates",
                "Pilates ring",
                "Reformer strap",
            ],
        ),
        (
            "gym",
            &[
                "Tạ tay",
                "Dây kháng lực",
                "Con lăn giãn cơ",
                "Kettlebell",
                "Găng tay tập gym",
            ],
        ),
        (
            "apparel",
            &[
                "Áo thun thể thao",
                "Quần legging",
                "Áo bra thể thao",
                "Running shorts",
            ],
        ),
        (
            "nutrition",
            &[
                "Bình lắc protein",
                "Whey protein",
                "Thanh năng lượng",
                "Electrolyte mix",
            ],
        ),
        (
            "accessories",
            &["Bình nước giữ nhiệt", "Khăn tập", "Túi gym", "Headband"],
        ),
    ];
    const MODELS: [&str; 6] = ["cao su", "TPE", "Pro", "Lite", "cotton", "Eco"];
    const COLOURS: [&str; 5] = ["xanh", "đen", "hồng", "tím", "xám"];
    let n = shop * PRODUCTS_PER_SHOP + i;
    let (category, names) = KINDS[n % KINDS.len()];
    // A multiplicative hash spreads the parts over the combinations.
    let h = (n as u64).wrapping_mul(2_654_435_761);
    let name = format!(
        "{} {} {}",
        names[(n / KINDS.len()) % names.len()],
        MODELS[((h >> 8) % MODELS.len() as u64) as usize],
        COLOURS[((h >> 16) % COLOURS.len() as u64) as usize]
    );
    let price = 50_000 + ((n * 37_000) % 900_000) as u64;
    let grams = 100 + ((n * 130) % 2_000) as u64;
    (name, category, price, grams)
}

pub(super) async fn seed(c: &Client) -> anyhow::Result<Seeded> {
    let logins = people();
    let mut tokens = std::collections::HashMap::new();
    for l in &logins {
        tokens.insert(l.email.clone(), c.account(l).await?);
    }
    let (mai, mai_id) = tokens["mai@demo.surge"].clone();
    let (linh, linh_id) = tokens["linh@demo.surge"].clone();
    let shop = c.post("/api/v1/shops", Some(&mai),
        json!({"name": "Mai Yoga Store", "location": {"lat": SHOP.0, "lng": SHOP.1}, "address": "12 Trang Tien, Hoan Kiem, Hanoi"})).await?;
    let shop_id = shop["id"].as_str().context("shop id")?.to_owned();
    let mut products = Vec::new();
    // Each with a brand, attributes and a description (shown on its page,
    // searched, faceted).
    for (name, category, price, grams, brand, attributes, description) in [
        (
            "Cork yoga mat",
            "yoga",
            450_000,
            1_800,
            "Lotus Cork",
            json!({"material": ["cork", "natural rubber"], "thickness": ["6 mm"]}),
            "## Grip that grows with sweat

Natural **cork** on a rubber base: the wetter it gets, the better it holds.

- 183 × 61 cm, 6 mm
- Wipe with a damp cloth; dry flat
",
        ),
        (
            "Pilates ring",
            "pilates",
            220_000,
            600,
            "Core Studio",
            json!({"material": ["fibreglass", "foam"], "diameter": ["38 cm"]}),
            "A light, springy ring with *padded* handles, for inner-thigh and arm work.",
        ),
        (
            "Resistance bands (set of 5)",
            "gym",
            180_000,
            400,
            "Core Studio",
            json!({"material": ["latex"], "resistance": ["5–40 kg"]}),
            "Five bands from extra light to heavy, with a carry bag.

1. Yellow 5 kg
2. Red 10 kg
3. Green 20 kg
4. Blue 30 kg
5. Black 40 kg",
        ),
        (
            "Foam roller",
            "gym",
            260_000,
            700,
            "Lotus Cork",
            json!({"material": ["EVA foam"], "length": ["45 cm"]}),
            "Firm EVA foam with a ridged surface, for calves, back and quads after a session.",
        ),
        (
            "Steel water bottle",
            "accessories",
            150_000,
            350,
            "Hanoi Flask",
            json!({"material": ["stainless steel"], "capacity": ["750 ml"]}),
            "Double-walled: cold for 24 hours, hot for 12. ~~Plastic~~ not here.",
        ),
        (
            "Yoga block pair",
            "yoga",
            120_000,
            500,
            "Lotus Cork",
            json!({"material": ["cork"]}),
            "Two dense cork blocks for support in standing and seated poses.",
        ),
    ] {
        let p = c.post(&format!("/api/v1/shops/{shop_id}/products"), Some(&mai),
            json!({"name": name, "category": category, "price": price, "currency": "VND", "stock": 500, "weight_grams": grams,
                   "brand": brand, "attributes": attributes, "description": description})).await?;
        products.push(p["id"].as_str().context("product id")?.to_owned());
    }
    // The foam roller is on sale for a week: struck through in the shop.
    let week = chrono::Utc::now() + chrono::Duration::days(7);
    c.put(
        &format!("/api/v1/products/{}", products[3]),
        &mai,
        json!({"sale": {"price": 199_000, "starts_at": null, "ends_at": week}}),
    )
    .await?;
    // Vouchers to collect: the shop's (20,000 off from 300,000) and the
    // platform's (free shipping up to 30,000 from 200,000; 10 % off from
    // 1,000,000), shown in the cart with the best combination.
    c.post(&format!("/api/v1/shops/{shop_id}/coupons"), Some(&mai),
        json!({"code": "MAI20K", "kind": "fixed", "value": 20_000, "min_spend": 300_000, "voucher": true, "global_limit": 500})).await?;
    let (admin, _) = &tokens[ADMIN_EMAIL];
    for body in [
        json!({"code": "FREESHIP", "kind": "free_shipping", "value": 30_000, "min_spend": 200_000, "per_user_limit": 3}),
        json!({"code": "SURGE10", "kind": "percentage", "value": 10, "min_spend": 1_000_000, "global_limit": 100}),
    ] {
        c.post("/api/v1/admin/vouchers", Some(admin), body).await?;
    }
    let shops = seed_catalog(c, &tokens).await?;
    // A few views and a basket, so trending and "bought together" show.
    let (binh, _) = &tokens["binh@demo.surge"];
    let (an_token, _) = &tokens["an@demo.surge"];
    for (who, seen) in [(binh, &products[..4]), (an_token, &products[1..3])] {
        for p in seen {
            c.post("/api/v1/behavior/view", Some(who), json!({"product_id": p}))
                .await?;
        }
    }
    let sale = c
        .post(
            "/api/v1/flash-sales",
            Some(&mai),
            json!({"product_id": products[0], "stock": 50, "per_user_limit": 1, "price": 225_000}),
        )
        .await?;
    // A second sale opens a minute after the demo starts: its card counts
    // down to the opening the server announces.
    let soon = chrono::Utc::now() + chrono::Duration::minutes(1);
    let later_sale = c
        .post(
            "/api/v1/flash-sales",
            Some(&mai),
            json!({"product_id": products[5], "stock": 30, "per_user_limit": 1, "price": 60_000,
                   "opens_at": soon, "closes_at": soon + chrono::Duration::hours(2)}),
        )
        .await?;
    let course = c.post("/api/v1/courses", Some(&linh),
        json!({"title": "Free Pilates basics", "kind": "pilates", "capacity": 30, "price": 0, "currency": "VND", "sessions": [],
               "description": "Four weeks of mat Pilates for **complete beginners**: posture, breath and a strong centre. Bring a mat and water.",
               "syllabus": [{"title": "Breathing and neutral spine", "minutes": 15}, {"title": "The hundred", "minutes": 10},
                            {"title": "Roll-ups and leg circles", "minutes": 20}, {"title": "Cool-down stretch", "minutes": 10}]})).await?;
    for (i, email) in ["an@demo.surge", "binh@demo.surge"].iter().enumerate() {
        let (token, _) = &tokens[*email];
        let (lat, lng) = HOMES[i % HOMES.len()];
        c.post("/api/v1/users/addresses", Some(token),
            json!({"label": "home", "line1": format!("{} Hang Bai", 20 + i), "city": "Hanoi", "lat": lat, "lng": lng, "is_default": true})).await?;
    }
    // Binh bought the mat with its blocks (bought together).
    let binh_address = c.get("/api/v1/users/addresses", binh).await?;
    for p in [&products[0], &products[5]] {
        c.post(
            "/api/v1/cart/items",
            Some(binh),
            json!({"product_id": p, "quantity": 1}),
        )
        .await?;
    }
    c.post(
        "/api/v1/orders",
        Some(binh),
        json!({"address_id": binh_address[0]["id"], "payment_method": "cod"}),
    )
    .await?;
    let address = binh_address[0]["id"].as_str().context("address id")?;
    seed_reviews(c, &tokens, address, &shops).await?;
    // An's order is already on its way when you first look.
    let (an, _) = &tokens["an@demo.surge"];
    let addresses = c.get("/api/v1/users/addresses", an).await?;
    let address = addresses[0]["id"].as_str().context("address id")?;
    c.post(
        "/api/v1/cart/items",
        Some(an),
        json!({"product_id": products[1], "quantity": 1}),
    )
    .await?;
    c.post(
        "/api/v1/orders",
        Some(an),
        json!({"address_id": address, "payment_method": "cod"}),
    )
    .await?;
    Ok(Seeded {
        password: PASSWORD.into(),
        logins,
        shop_id: shop_id.into(),
        shops,
        flash_sales: vec![
            Queue {
                id: sale["id"].as_str().context("sale id")?.to_owned(),
                title: "Flash sale: cork yoga mat at half price".into(),
                owner_id: mai_id.clone().into(),
            },
            Queue {
                id: later_sale["id"].as_str().context("sale id")?.to_owned(),
                title: "In a minute: yoga block pair at half price".into(),
                owner_id: mai_id.into(),
            },
        ],
        courses: vec![Queue {
            id: course["id"].as_str().context("course id")?.to_owned(),
            title: "Free Pilates basics".into(),
            owner_id: linh_id.into(),
        }],
    })
}

/// What the demo's reviews say (stars, text).
pub(super) const SAID: [(u8, &str); 4] = [
    (5, "Arrived quickly and exactly as described."),
    (
        4,
        "Good quality for the price; the box was a little dented.",
    ),
    (5, "Rất tốt, giao hàng nhanh!"),
    (3, "Works, though the colour is darker than the photo."),
];

/// Binh received an order from each of three generated shops (delivered
/// by the shop itself: no shipper is online while the demo seeds) and
/// reviewed its product and the shop.
async fn seed_reviews(
    c: &Client,
    tokens: &std::collections::HashMap<String, (String, String)>,
    address: &str,
    shops: &[crate::domain::ids::ShopId],
) -> anyhow::Result<()> {
    let (binh, _) = &tokens["binh@demo.surge"];
    for (i, shop) in shops.iter().take(3).enumerate() {
        let page = c
            .get(&format!("/api/v1/products?shop_id={shop}&limit=5"), binh)
            .await?;
        let product = page["items"][i]["id"].as_str().context("product id")?;
        c.post(
            "/api/v1/cart/items",
            Some(binh),
            json!({"product_id": product, "quantity": 1}),
        )
        .await?;
        let placed = c
            .post(
                "/api/v1/orders",
                Some(binh),
                json!({"address_id": address, "payment_method": "cod"}),
            )
            .await?;
        let order = placed["orders"][0]["id"].as_str().context("order id")?;
        let (merchant, _) = &tokens[&format!("shop{i}@demo.surge")];
        c.put(
            &format!("/api/v1/orders/{order}/confirm"),
            merchant,
            json!({}),
        )
        .await?;
        for status in ["ready_for_pickup", "picked_up", "delivering", "delivered"] {
            c.put(
                &format!("/api/v1/shipping/{order}/status"),
                merchant,
                json!({"status": status}),
            )
            .await?;
        }
        let (stars, text) = SAID[i % SAID.len()];
        let review = json!({"order_id": order, "stars": stars, "text": text});
        c.post(
            &format!("/api/v1/products/{product}/reviews"),
            Some(binh),
            review.clone(),
        )
        .await?;
        c.post(&format!("/api/v1/shops/{shop}/reviews"), Some(binh), review)
            .await?;
    }
    Ok(())
}

/// The generated shops and their products.
async fn seed_catalog(
    c: &Client,
    tokens: &std::collections::HashMap<String, (String, String)>,
) -> anyhow::Result<Vec<crate::domain::ids::ShopId>> {
    let mut shops = Vec::new();
    for (i, (name, address, north, east)) in SHOPS.iter().enumerate() {
        let (token, _) = &tokens[&format!("shop{i}@demo.surge")];
        let lat = SHOP.0 + north * 1000.0 / METRES_PER_DEG;
        let lng = SHOP.1 + east * 1000.0 / (METRES_PER_DEG * SHOP.0.to_radians().cos());
        let shop = c
            .post(
                "/api/v1/shops",
                Some(token),
                json!({"name": name, "location": {"lat": lat, "lng": lng}, "address": address}),
            )
            .await?;
        let id = shop["id"].as_str().context("shop id")?;
        shops.push(id.into());
        for n in 0..PRODUCTS_PER_SHOP {
            let (name, category, price, grams) = generated_product(i, n);
            c.post(&format!("/api/v1/shops/{id}/products"), Some(token),
                json!({"name": name, "category": category, "price": price, "currency": "VND", "stock": 100, "weight_grams": grams})).await?;
        }
    }
    Ok(shops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_catalog_spans_every_category_with_varied_names() {
        let all: Vec<_> = (0..SHOPS.len())
            .flat_map(|s| (0..PRODUCTS_PER_SHOP).map(move |i| generated_product(s, i)))
            .collect();
        let names: std::collections::HashSet<&str> = all.iter().map(|p| p.0.as_str()).collect();
        let categories: std::collections::HashSet<&str> = all.iter().map(|p| p.1).collect();
        assert!(names.len() >= 200, "{} distinct names", names.len());
        assert_eq!(categories.len(), 6);
        assert!(all.iter().all(|p| p.2 > 0 && p.3 > 0));
    }
}
