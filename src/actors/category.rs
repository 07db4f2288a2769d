//! The category tree: one entity (id `all`), the single writer of every
//! category, so slugs stay unique and the tree never gets a cycle. Admins
//! only. Writes the whole tree, in reading order, to the `categories` row.

use serde::{Deserialize, Serialize};

use super::entity::record_row;
use super::{Ctx, Entity};
use crate::domain::category::{
    check_delete, create, ordered, update, Category, CategoryInput, CategoryPatch, Tree,
};
use crate::domain::{Caller, DomainError, Role};
/// The read table this module writes (named in the store's catalog).
pub use crate::store::tables::CATEGORIES;
use crate::store::IndexOp;

/// The tree's one entity id (and its `categories` row's key).
pub const TREE: &str = "all";

pub struct CategoryTreeEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CategoryEvent {
    Created { category: Category },
    Updated { category: Category },
    Deleted { id: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CategoryCommand {
    Create {
        caller: Caller,
        id: String,
        input: CategoryInput,
    },
    Update {
        caller: Caller,
        id: String,
        patch: CategoryPatch,
    },
    Delete {
        caller: Caller,
        id: String,
    },
}

fn admin(caller: &Caller) -> Result<(), DomainError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(DomainError::Forbidden(
            "only admins arrange categories".into(),
        ))
    }
}

impl Entity for CategoryTreeEntity {
    const KIND: &'static str = "categories";
    type State = Tree;
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    /// The category made or changed (`None` after a deletion).
    type Reply = Option<Category>;
    type Rejection = DomainError;

    fn decide(
        state: &Tree,
        cmd: CategoryCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<CategoryEvent>, Option<Category>), DomainError> {
        match cmd {
            CategoryCommand::Create { caller, id, input } => {
                admin(&caller)?;
                if let Some(c) = state.get(&id) {
                    // A retry of the same creation.
                    return Ok((vec![], Some(c.clone())));
                }
                let category = create(state, &id, &input, ctx.now)?;
                Ok((
                    vec![CategoryEvent::Created {
                        category: category.clone(),
                    }],
                    Some(category),
                ))
            }
            CategoryCommand::Update { caller, id, patch } => {
                admin(&caller)?;
                let category = update(state, &id, &patch, ctx.now)?;
                Ok((
                    vec![CategoryEvent::Updated {
                        category: category.clone(),
                    }],
                    Some(category),
                ))
            }
            CategoryCommand::Delete { caller, id } => {
                admin(&caller)?;
                check_delete(state, &id)?;
                Ok((vec![CategoryEvent::Deleted { id }], None))
            }
        }
    }

    fn apply(state: &mut Tree, event: &CategoryEvent) {
        match event {
            CategoryEvent::Created { category } | CategoryEvent::Updated { category } => {
                state.insert(category.id.clone(), category.clone());
            }
            CategoryEvent::Deleted { id } => {
                state.remove(id);
            }
        }
    }

    fn index(id: &str, _before: &Tree, after: &Tree, _events: &[CategoryEvent]) -> Vec<IndexOp> {
        record_row(CATEGORIES, id, Self::VERSION, Some(&ordered(after)))
    }
}
