//! The category tree: reading it (from its one row), arranging it (admins,
//! through its one entity), and turning a category into what products and
//! searches filter by (its subtree's slugs).

use std::collections::HashSet;
use std::sync::Arc;

use crate::actors::category::{CategoryCommand, CategoryTreeEntity, CATEGORIES, TREE};
use crate::actors::{Entity, Registry};
use crate::domain::category::{subtree, Category, CategoryInput, CategoryPatch, Tree};
use crate::domain::{Caller, DomainError};
use crate::service::{new_id, read_row, ServiceError};
use crate::store::Store;

#[derive(Clone)]
pub struct Categories {
    pub(in crate::service) tree: Registry<CategoryTreeEntity>,
    pub(in crate::service) store: Arc<dyn Store>,
}

impl Categories {
    /// Every category in reading order (each root, then its subtree).
    pub async fn list(&self) -> Result<Vec<Category>, ServiceError> {
        Ok(read_row(
            self.store.as_ref(),
            CATEGORIES,
            TREE,
            CategoryTreeEntity::VERSION,
        )
        .await?
        .unwrap_or_default())
    }

    async fn tree(&self) -> Result<Tree, ServiceError> {
        Ok(self
            .list()
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect())
    }

    pub async fn get(&self, id: &str) -> Result<Category, ServiceError> {
        self.tree()
            .await?
            .remove(id)
            .ok_or_else(|| DomainError::NotFound("category").into())
    }

    pub async fn create(
        &self,
        caller: Caller,
        input: CategoryInput,
    ) -> Result<Category, ServiceError> {
        let cmd = CategoryCommand::Create {
            caller,
            id: new_id(),
            input,
        };
        self.tree
            .call(TREE, cmd)
            .await?
            .ok_or_else(|| ServiceError::Unavailable("the category was not made".into()))
    }

    pub async fn update(
        &self,
        caller: Caller,
        id: &str,
        patch: CategoryPatch,
    ) -> Result<Category, ServiceError> {
        let cmd = CategoryCommand::Update {
            caller,
            id: id.to_owned(),
            patch,
        };
        self.tree
            .call(TREE, cmd)
            .await?
            .ok_or_else(|| ServiceError::Unavailable("the category was not changed".into()))
    }

    /// Deletes a category without subcategories; products in it keep its
    /// slug as their free-text category.
    pub async fn delete(&self, caller: Caller, id: &str) -> Result<(), ServiceError> {
        let cmd = CategoryCommand::Delete {
            caller,
            id: id.to_owned(),
        };
        self.tree.call(TREE, cmd).await?;
        Ok(())
    }

    /// The slugs of `id` and every category below it (what a product of
    /// the subtree has as its `category`); 422 for an unknown id.
    pub async fn subtree_slugs(&self, id: &str) -> Result<HashSet<String>, ServiceError> {
        let tree = self.tree().await?;
        if !tree.contains_key(id) {
            return Err(DomainError::invalid("category_id", "no such category").into());
        }
        Ok(subtree(&tree, id)
            .into_iter()
            .filter_map(|c| tree.get(&c).map(|c| c.slug.clone()))
            .collect())
    }

    /// The slug of category `id` (422 if there is none).
    pub async fn slug_of(&self, id: &str) -> Result<String, ServiceError> {
        self.tree()
            .await?
            .remove(id)
            .map(|c| c.slug)
            .ok_or_else(|| DomainError::invalid("category_id", "no such category").into())
    }
}
