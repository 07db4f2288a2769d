//! Authentication primitives: password hashing with a bound on concurrent
//! work, and JWT access/refresh tokens. The flows that use them (register,
//! login, refresh, logout) live in `service::auth`.

pub mod jwt;
pub mod password;

pub use jwt::{Claims, JwtKeys, TokenType};
pub use password::{HashError, PasswordHasher};
