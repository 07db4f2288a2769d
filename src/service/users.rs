//! A user's own profile and delivery addresses.

use super::{new_id, ServiceError, Services};
use crate::domain::user::{Address, AddressInput, UserView};

impl Services {
    pub async fn update_profile(
        &self,
        user_id: &str,
        name: Option<String>,
        phone: Option<String>,
    ) -> Result<UserView, ServiceError> {
        Ok(self.users.update_profile(user_id, name, phone).await?)
    }

    pub async fn addresses(&self, user_id: &str) -> Result<Vec<Address>, ServiceError> {
        Ok(self.users.addresses(user_id).await?)
    }

    /// A new address under a fresh id.
    pub async fn add_address(
        &self,
        user_id: &str,
        input: AddressInput,
    ) -> Result<Address, ServiceError> {
        Ok(self.users.add_address(user_id, new_id(), input).await?)
    }

    pub async fn update_address(
        &self,
        user_id: &str,
        id: String,
        input: AddressInput,
    ) -> Result<Address, ServiceError> {
        Ok(self.users.update_address(user_id, id, input).await?)
    }

    pub async fn remove_address(&self, user_id: &str, id: String) -> Result<(), ServiceError> {
        Ok(self.users.remove_address(user_id, id).await?)
    }
}
