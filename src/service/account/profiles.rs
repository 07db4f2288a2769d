//! A user's own profile and delivery addresses.

use crate::actors::user::User;
use crate::actors::Registry;
use crate::domain::user::{Address, AddressInput, UserView};
use crate::domain::DomainError;
use crate::service::{new_id, ServiceError};

/// A user's own profile and addresses.
#[derive(Clone)]
pub struct Profiles {
    pub(in crate::service) users: Registry<User>,
}

impl Profiles {
    pub(crate) async fn address(
        &self,
        user_id: &str,
        address_id: Option<&str>,
    ) -> Result<Option<Address>, ServiceError> {
        let list = self.users.addresses(user_id).await?;
        match address_id {
            Some(id) => list
                .into_iter()
                .find(|a| a.id == id)
                .map(Some)
                // Someone else's address is as unknown as a made-up one.
                .ok_or_else(|| DomainError::NotFound("address").into()),
            None => Ok(crate::domain::user::default_address(&list).cloned()),
        }
    }

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
