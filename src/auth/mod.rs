//! Authentication primitives: password hashing with a bound on concurrent
//! work, JWT access/refresh tokens, and throttles against guessing. The flows that use them (register,
//! login, refresh, logout) live in `service::account::auth`.

pub mod jwt;
pub mod password;
pub mod throttle;

pub use jwt::{Claims, JwtKeys, TokenType};
pub use password::{HashError, PasswordHasher};
pub use throttle::{ThrottleConfig, Throttled, Throttles};
