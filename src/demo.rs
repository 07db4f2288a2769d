//! `surge demo`: the engine on embedded defaults, seeded through its own
//! public HTTP API with a shop and products, a trainer with a free course, a
//! flash sale, customers (one with an order already on its way), and
//! simulated people: a customer (An) who orders again whenever nothing is
//! on its way, a merchant who confirms orders and hands them over, and
//! shippers who accept offers and drive to the customer along the streets,
//! reporting positions like a phone would.
//!
//! Seeding runs once per data directory (`demo.json` there records what was
//! created); later starts only restart the simulations. `/demo.json` serves
//! the logins and ids to the web front end.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The password of every demo account.
pub const PASSWORD: &str = "surge demo password";
/// The demo's admin (made at start, as `admin_email` makes one).
pub const ADMIN_EMAIL: &str = "admin@demo.surge";
/// The shop (Hoan Kiem, Hanoi) and where the seeded customers live.
const SHOP: (f64, f64) = (21.0285, 105.8542);
const HOMES: [(f64, f64); 3] = [
    (21.0362, 105.8601),
    (21.0231, 105.8467),
    (21.0330, 105.8455),
];
/// Simulated shippers' speed, metres per second, and report interval.
const SPEED_MPS: f64 = 12.0;
const TICK: Duration = Duration::from_secs(1);
const METRES_PER_DEG: f64 = 111_195.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Login {
    pub role: String,
    pub email: String,
    pub name: String,
    /// Played by the demo itself (not for you to log in as).
    #[serde(default)]
    pub simulated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Queue {
    pub id: String,
    pub title: String,
    pub owner_id: crate::domain::ids::UserId,
}

/// What the seed created; served as `/demo.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seeded {
    pub password: String,
    pub logins: Vec<Login>,
    pub shop_id: crate::domain::ids::ShopId,
    pub flash_sales: Vec<Queue>,
    pub courses: Vec<Queue>,
    /// The generated shops, in `SHOPS` order (their merchants are
    /// simulated).
    #[serde(default)]
    pub shops: Vec<crate::domain::ids::ShopId>,
}

/// One JSON call to Surge's API: the answer's body, or an error naming the
/// URL, the status and the body when it is not a success. (Also the
/// benchmark's client.)
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut req = client.request(method, &url);
    if !body.is_null() {
        req = req.json(&body);
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    ensure!(status.is_success(), "{url}: {status} {v}");
    Ok(v)
}

/// A client of this server's own API.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> anyhow::Result<Value> {
        call(
            &self.http,
            method,
            format!("{}{path}", self.base),
            token,
            body,
        )
        .await
    }
    async fn get(&self, path: &str, token: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, Some(token), Value::Null)
            .await
    }
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, body).await
    }
    async fn put(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, Some(token), body)
            .await
    }

    /// Logs in, registering the account first when it does not exist.
    async fn account(&self, login: &Login) -> anyhow::Result<(String, String)> {
        let creds = json!({"email": login.email, "password": PASSWORD});
        let pair = match self.post("/api/v1/auth/login", None, creds.clone()).await {
            Ok(p) => p,
            Err(_) => {
                self.post("/api/v1/auth/register", None,
                    json!({"email": login.email, "password": PASSWORD, "name": login.name, "role": login.role})).await?;
                self.post("/api/v1/auth/login", None, creds).await?
            }
        };
        let token = pair["access_token"]
            .as_str()
            .context("access_token")?
            .to_owned();
        let me = self.get("/api/v1/users/profile", &token).await?;
        Ok((token, me["id"].as_str().context("user id")?.to_owned()))
    }
}

fn login(role: &str, email: &str, name: &str, simulated: bool) -> Login {
    Login {
        role: role.into(),
        email: email.into(),
        name: name.into(),
        simulated,
    }
}

fn people() -> Vec<Login> {
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

/// Seeds the server at `base` (once per `data_dir`) and starts the
/// simulations; returns what was seeded. The simulations run until the
/// process ends.
pub async fn start(base: &str, data_dir: &Path) -> anyhow::Result<Seeded> {
    let c = Client {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        base: base.trim_end_matches('/').to_owned(),
    };
    let file = data_dir.join("demo.json");
    let seeded = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice(&bytes).context("demo.json")?,
        Err(_) => {
            let s = seed(&c).await?;
            std::fs::write(&file, serde_json::to_vec_pretty(&s)?)?;
            s
        }
    };
    let logins = seeded.logins.clone();
    let find = |email: &str| {
        logins
            .iter()
            .find(|l| l.email == email)
            .cloned()
            .context("demo login")
    };
    let merchants = std::iter::once(("mai@demo.surge".to_owned(), seeded.shop_id.clone())).chain(
        seeded
            .shops
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("shop{i}@demo.surge"), s.clone())),
    );
    for (email, shop) in merchants {
        let (mc, merchant) = (c.clone(), find(&email)?);
        tokio::spawn(
            async move { forever("merchant", || run_merchant(&mc, &merchant, &shop)).await },
        );
    }
    let customer = find("an@demo.surge")?;
    let cc = c.clone();
    tokio::spawn(async move { forever("customer", || run_customer(&cc, &customer)).await });
    for l in logins.iter().filter(|l| l.simulated && l.role == "shipper") {
        let (c, l) = (c.clone(), l.clone());
        tokio::spawn(async move { forever("shipper", || run_shipper(&c, &l)).await });
    }
    Ok(seeded)
}

/// Runs a simulation again after a failure (a restart of the server, say).
async fn forever<F, Fut>(what: &str, mut run: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    loop {
        if let Err(e) = run().await {
            tracing::warn!(error = %format!("{e:#}"), "demo {what} stopped; restarting");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn seed(c: &Client) -> anyhow::Result<Seeded> {
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
    for (name, category, price, grams) in [
        ("Cork yoga mat", "yoga", 450_000, 1_800),
        ("Pilates ring", "pilates", 220_000, 600),
        ("Resistance bands (set of 5)", "gym", 180_000, 400),
        ("Foam roller", "gym", 260_000, 700),
        ("Steel water bottle", "accessories", 150_000, 350),
        ("Yoga block pair", "yoga", 120_000, 500),
    ] {
        let p = c.post(&format!("/api/v1/shops/{shop_id}/products"), Some(&mai),
            json!({"name": name, "category": category, "price": price, "currency": "VND", "stock": 500, "weight_grams": grams})).await?;
        products.push(p["id"].as_str().context("product id")?.to_owned());
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
    let course = c.post("/api/v1/courses", Some(&linh),
        json!({"title": "Free Pilates basics", "kind": "pilates", "capacity": 30, "price": 0, "currency": "VND", "sessions": []})).await?;
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
        flash_sales: vec![Queue {
            id: sale["id"].as_str().context("sale id")?.to_owned(),
            title: "Flash sale: cork yoga mat at half price".into(),
            owner_id: mai_id.into(),
        }],
        courses: vec![Queue {
            id: course["id"].as_str().context("course id")?.to_owned(),
            title: "Free Pilates basics".into(),
            owner_id: linh_id.into(),
        }],
    })
}

/// What the demo's reviews say (stars, text).
const SAID: [(u8, &str); 4] = [
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

/// An: whenever An has nothing on its way, orders something again (cash on
/// delivery), so whoever opens the demo finds a delivery to follow.
async fn run_customer(c: &Client, who: &Login) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    loop {
        let orders = c.get("/api/v1/orders?limit=20", &token).await?;
        let busy = orders["items"].as_array().into_iter().flatten().any(|o| {
            matches!(
                o["status"].as_str(),
                Some(
                    "pending_payment"
                        | "paid"
                        | "confirmed"
                        | "ready_for_pickup"
                        | "picked_up"
                        | "delivering"
                )
            )
        });
        review_delivered(c, &token, &orders).await?;
        if !busy {
            tokio::time::sleep(Duration::from_secs(15)).await;
            let products = c.get("/api/v1/products?limit=20", &token).await?;
            let address = c.get("/api/v1/users/addresses", &token).await?;
            if let (Some(p), Some(a)) = (
                products["items"]
                    .as_array()
                    .and_then(|i| i.iter().find(|p| p["stock"].as_u64() > Some(0))),
                address[0]["id"].as_str(),
            ) {
                c.post(
                    "/api/v1/cart/items",
                    Some(&token),
                    json!({"product_id": p["id"], "quantity": 1}),
                )
                .await?;
                c.post(
                    "/api/v1/orders",
                    Some(&token),
                    json!({"address_id": a, "payment_method": "cod"}),
                )
                .await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// An reviews each delivered order (its first product and the shop), so
/// ratings and reviews fill in as the demo runs.
async fn review_delivered(c: &Client, token: &str, orders: &Value) -> anyhow::Result<()> {
    let delivered = orders["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["status"] == "delivered");
    for (n, o) in delivered.enumerate() {
        let id = o["id"].as_str().unwrap_or_default();
        let written = c
            .get(&format!("/api/v1/orders/{id}/reviews"), token)
            .await?;
        if written.as_array().is_some_and(|w| !w.is_empty()) {
            continue;
        }
        let (stars, text) = SAID[n % SAID.len()];
        let body = json!({"order_id": id, "stars": stars, "text": text});
        if let Some(p) = o["lines"][0]["product_id"].as_str() {
            c.post(
                &format!("/api/v1/products/{p}/reviews"),
                Some(token),
                body.clone(),
            )
            .await?;
        }
        if let Some(shop) = o["shop_id"].as_str() {
            c.post(&format!("/api/v1/shops/{shop}/reviews"), Some(token), body)
                .await?;
        }
    }
    Ok(())
}

/// The merchant: confirms what is paid (or cash on delivery) and hands
/// orders with a shipper over for pickup.
async fn run_merchant(c: &Client, who: &Login, shop: &str) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    loop {
        let page = c
            .get(&format!("/api/v1/shops/{shop}/orders?limit=50"), &token)
            .await?;
        for o in page["items"].as_array().into_iter().flatten() {
            let id = o["id"].as_str().unwrap_or_default();
            let cod = o["payment"]["provider"] == "cod";
            match o["status"].as_str() {
                Some("paid") => {
                    c.put(&format!("/api/v1/orders/{id}/confirm"), &token, json!({}))
                        .await
                        .ok();
                }
                Some("pending_payment") if cod => {
                    c.put(&format!("/api/v1/orders/{id}/confirm"), &token, json!({}))
                        .await
                        .ok();
                }
                Some("confirmed") if !o["delivery"]["shipper_id"].is_null() => {
                    c.put(
                        &format!("/api/v1/shipping/{id}/status"),
                        &token,
                        json!({"status": "ready_for_pickup"}),
                    )
                    .await
                    .ok();
                }
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// One step of `speed × TICK` along the streets from `from` to `to`:
/// north–south first, then east–west. `None` once there.
pub fn step_towards(from: (f64, f64), to: (f64, f64), metres: f64) -> Option<(f64, f64)> {
    let step = metres / METRES_PER_DEG;
    let (dlat, dlng) = (to.0 - from.0, to.1 - from.1);
    if dlat.abs() > 1e-7 {
        Some((from.0 + dlat.signum() * dlat.abs().min(step), from.1))
    } else if dlng.abs() > 1e-7 {
        Some((from.0, from.1 + dlng.signum() * dlng.abs().min(step)))
    } else {
        None
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A shipper: online near the shop, accepts the offers it gets, picks up,
/// drives to the customer reporting its position every second, delivers,
/// drives back.
async fn run_shipper(c: &Client, who: &Login) -> anyhow::Result<()> {
    let (token, _) = c.account(who).await?;
    // Spread around the shop so dispatch has a nearest one.
    let jitter = (who.email.len() as f64 % 5.0 - 2.0) * 0.0006;
    let mut pos = (SHOP.0 + jitter, SHOP.1 - jitter);
    let mut last_online = None::<std::time::Instant>;
    loop {
        // Stay online with a fresh position (dispatch wants one < 2 min old).
        if last_online.is_none_or(|t| t.elapsed() > Duration::from_secs(30)) {
            c.put("/api/v1/shipping/shippers/me/status", &token,
                json!({"status": "online", "location": {"lat": pos.0, "lng": pos.1, "ts": now_ms()}})).await?;
            last_online = Some(std::time::Instant::now());
        }
        let me = c.get("/api/v1/shipping/shippers/me", &token).await?;
        if let (Some(order), true) = (
            me["offer"]["order_id"].as_str(),
            me["active_order"].is_null(),
        ) {
            c.post(
                &format!("/api/v1/shipping/{order}/accept"),
                Some(&token),
                json!({}),
            )
            .await
            .ok();
        } else if let Some(order) = me["active_order"].as_str() {
            let o = c.get(&format!("/api/v1/orders/{order}"), &token).await?;
            let home = (
                o["address"]["lat"].as_f64().unwrap_or(SHOP.0),
                o["address"]["lng"].as_f64().unwrap_or(SHOP.1),
            );
            match o["status"].as_str() {
                Some("ready_for_pickup") => {
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "picked_up"}),
                    )
                    .await?;
                }
                Some("picked_up") => {
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "delivering"}),
                    )
                    .await?;
                }
                Some("delivering") => {
                    pos = drive(c, &token, order, pos, home).await?;
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    c.put(
                        &format!("/api/v1/shipping/{order}/status"),
                        &token,
                        json!({"status": "delivered"}),
                    )
                    .await?;
                    // Back to the shop, off the clock.
                    while let Some(next) = step_towards(pos, SHOP, SPEED_MPS * 3.0) {
                        pos = next;
                    }
                    last_online = None;
                }
                _ => {}
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Drives from `from` to `to`, one position report per tick; where it ended.
async fn drive(
    c: &Client,
    token: &str,
    order: &str,
    from: (f64, f64),
    to: (f64, f64),
) -> anyhow::Result<(f64, f64)> {
    let mut pos = from;
    while let Some(next) = step_towards(pos, to, SPEED_MPS * TICK.as_secs_f64()) {
        pos = next;
        c.post(
            &format!("/api/v1/shipping/{order}/location"),
            Some(token),
            json!({"lat": pos.0, "lng": pos.1, "speed": SPEED_MPS, "ts": now_ms()}),
        )
        .await?;
        tokio::time::sleep(TICK).await;
    }
    Ok(pos)
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

    #[test]
    fn driving_goes_along_the_streets_and_arrives() {
        let (from, to) = ((21.0, 105.0), (21.001, 104.999));
        let mut pos = from;
        let mut steps = 0;
        while let Some(next) = step_towards(pos, to, 12.0) {
            // One axis at a time, never more than a step.
            assert!(next.0 == pos.0 || next.1 == pos.1);
            assert!(
                ((next.0 - pos.0).abs() + (next.1 - pos.1).abs()) * METRES_PER_DEG <= 12.0 + 1e-6
            );
            pos = next;
            steps += 1;
            assert!(steps < 100);
        }
        assert_eq!(pos, to);
        assert!(steps >= 18, "111 m + 111 m at 12 m a step: {steps}");
    }
}
