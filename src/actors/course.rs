//! The course entity: one actor per course, owned by its trainer. Writes the
//! `courses` read table used by course listing.

use serde::{Deserialize, Serialize};

use super::entity::record_row;
use super::{Ctx, Entity};
use crate::domain::catalog::{check_course, patch_course, Course, CourseInput, CoursePatch};
use crate::domain::{Caller, DomainError};
/// The read tables this module writes (named in the store's catalog).
pub use crate::store::tables::{COURSES_BY_TRAINER, COURSES_TABLE};
use crate::store::IndexOp;

pub struct CourseEntity;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CourseEvent {
    Created { course: Course },
    Updated { course: Course },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CourseCommand {
    Create {
        caller: Caller,
        input: CourseInput,
    },
    Update {
        caller: Caller,
        patch: CoursePatch,
    },
    Get,
    /// Add, reorder or remove an image (the trainer).
    Media {
        caller: Caller,
        change: crate::domain::media::MediaChange,
    },
    /// Add a session to the schedule (the trainer).
    AddSession {
        caller: Caller,
        session: crate::domain::catalog::CourseSession,
    },
}

fn build(
    id: &str,
    trainer_id: crate::domain::ids::UserId,
    input: CourseInput,
    ctx: &Ctx<'_>,
    created_at: chrono::DateTime<chrono::Utc>,
) -> Result<Course, DomainError> {
    let description = match &input.description {
        Some(d) => crate::domain::description::render(d)?,
        None => None,
    };
    Ok(Course {
        id: id.to_owned(),
        trainer_id,
        title: input.title,
        kind: input.kind,
        capacity: input.capacity,
        is_free: input.price == 0,
        price: input.price,
        currency: input.currency,
        sessions: input.sessions,
        media: Vec::new(),
        created_at,
        updated_at: ctx.now,
        description,
        syllabus: input.syllabus,
    })
}

impl Entity for CourseEntity {
    const KIND: &'static str = "course";
    type State = Option<Course>;
    type Command = CourseCommand;
    type Event = CourseEvent;
    type Reply = Course;
    type Rejection = DomainError;

    fn decide(
        state: &Option<Course>,
        cmd: CourseCommand,
        ctx: &Ctx<'_>,
    ) -> Result<(Vec<CourseEvent>, Course), DomainError> {
        match cmd {
            CourseCommand::Create { caller, input } => {
                if state.is_some() {
                    return Err(DomainError::conflict(
                        "already_exists",
                        "this course already exists",
                    ));
                }
                let course = build(ctx.id, caller.user_id, check_course(&input)?, ctx, ctx.now)?;
                Ok((
                    vec![CourseEvent::Created {
                        course: course.clone(),
                    }],
                    course,
                ))
            }
            CourseCommand::Update { caller, patch } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("course"))?;
                caller.ensure_owner(&current.trainer_id, "course")?;
                let input = patch_course(current, &patch)?;
                let course = Course {
                    media: current.media.clone(),
                    ..build(
                        ctx.id,
                        current.trainer_id.clone(),
                        input,
                        ctx,
                        current.created_at,
                    )?
                };
                Ok((
                    vec![CourseEvent::Updated {
                        course: course.clone(),
                    }],
                    course,
                ))
            }
            CourseCommand::AddSession { caller, session } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("course"))?;
                caller.ensure_owner(&current.trainer_id, "course")?;
                if current.sessions.len() >= crate::domain::catalog::MAX_COURSE_SESSIONS {
                    return Err(DomainError::conflict(
                        "schedule_full",
                        "this course has as many sessions as it may",
                    ));
                }
                let session = crate::domain::catalog::check_session(&session)?;
                let mut course = current.clone();
                course.sessions.push(session);
                course.sessions.sort_by_key(|s| s.starts_at);
                course.updated_at = ctx.now;
                Ok((
                    vec![CourseEvent::Updated {
                        course: course.clone(),
                    }],
                    course,
                ))
            }
            CourseCommand::Media { caller, change } => {
                let current = state.as_ref().ok_or(DomainError::NotFound("course"))?;
                caller.ensure_owner(&current.trainer_id, "course")?;
                let media = crate::domain::media::change(
                    &current.media,
                    &change,
                    crate::domain::media::MAX_MEDIA,
                )?;
                if media == current.media {
                    return Ok((vec![], current.clone()));
                }
                let course = Course {
                    media,
                    updated_at: ctx.now,
                    ..current.clone()
                };
                Ok((
                    vec![CourseEvent::Updated {
                        course: course.clone(),
                    }],
                    course,
                ))
            }
            CourseCommand::Get => Ok((
                vec![],
                state.clone().ok_or(DomainError::NotFound("course"))?,
            )),
        }
    }

    fn apply(state: &mut Option<Course>, event: &CourseEvent) {
        match event {
            CourseEvent::Created { course } | CourseEvent::Updated { course } => {
                *state = Some(course.clone())
            }
        }
    }

    fn index(
        id: &str,
        _before: &Option<Course>,
        state: &Option<Course>,
        _events: &[CourseEvent],
    ) -> Vec<IndexOp> {
        let mut ops = record_row(COURSES_TABLE, id, Self::VERSION, state.as_ref());
        if let Some(c) = state {
            ops.extend(record_row(
                COURSES_BY_TRAINER,
                &format!("{}|{id}", c.trainer_id),
                Self::VERSION,
                Some(c),
            ));
            ops.push(super::entity::catalog_change("course", id, c.updated_at));
        }
        ops
    }
}
