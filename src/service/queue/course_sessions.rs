//! Course schedules: sessions and their exercises, for the enrolled.

use crate::actors::course::CourseEntity;
use crate::actors::Registry;
use crate::service::account::notifications::Notifications;
use crate::service::found;
use chrono::Utc;

use crate::actors::course::CourseCommand;
use crate::actors::queue::{Claim, ClaimStatus, CLAIMS_BY_QUEUE, CLAIMS_BY_USER};
use crate::domain::notification::Notification;
use crate::domain::{Caller, DomainError};
use crate::service::{new_id, ServiceError};
use crate::store::codec;

/// A course's sessions (its schedule and exercises).
pub struct CourseSessions {
    pub(in crate::service) courses: Registry<CourseEntity>,
    pub(in crate::service) notifications: Notifications,
    pub(in crate::service) store: std::sync::Arc<dyn crate::store::Store>,
}

impl CourseSessions {
    /// Whether `user_id` holds a confirmed place in course `course_id`.
    pub(in crate::service) async fn enrolled(
        &self,
        user_id: &str,
        course_id: &str,
    ) -> Result<bool, ServiceError> {
        let rows = self
            .store
            .scan(CLAIMS_BY_USER, &format!("{user_id}|{course_id}|"), None, 64)
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
            .any(|c| c.status == ClaimStatus::Confirmed))
    }

    /// `POST /courses/{id}/sessions` (the trainer): adds a session and
    /// tells everyone enrolled.
    pub async fn add_course_session(
        &self,
        caller: &Caller,
        course_id: &str,
        mut session: crate::domain::catalog::CourseSession,
    ) -> Result<crate::domain::catalog::CourseSession, ServiceError> {
        found(&self.courses, course_id, "course").await?;
        let session_id = new_id();
        session.id = Some(session_id.clone());
        let course = self
            .courses
            .call(
                course_id,
                CourseCommand::AddSession {
                    caller: caller.clone(),
                    session,
                },
            )
            .await?;
        let added = course
            .sessions
            .iter()
            .find(|s| s.id.as_deref() == Some(session_id.as_str()))
            .cloned()
            .ok_or_else(|| ServiceError::Unavailable("the session vanished".into()))?;
        let note = Notification {
            id: format!("session:{session_id}"),
            kind: "new_session".into(),
            title: format!("New session in {}", course.title),
            body: format!(
                "{} on {} ({} min).",
                added.title.clone().unwrap_or_else(|| "A session".into()),
                added.starts_at.format("%Y-%m-%d %H:%M UTC"),
                added.duration_min
            ),
            order_id: None,
            created_at: Utc::now(),
            read: false,
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .scan(
                    CLAIMS_BY_QUEUE,
                    &format!("{course_id}|"),
                    after.as_deref(),
                    512,
                )
                .await?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            let users: Vec<crate::domain::ids::UserId> = page
                .iter()
                .filter_map(|(_, v)| codec::decode::<Claim>(1, v).ok())
                .filter(|c| c.status == ClaimStatus::Confirmed)
                .map(|c| c.user_id)
                .collect();
            self.notifications
                .notify_each(users.into_iter().map(|u| (u, note.clone())).collect(), 32)
                .await?;
        }
        Ok(added)
    }

    /// `GET /courses/{id}/sessions`: the schedule with exercises, for the
    /// enrolled, the trainer and admins.
    pub async fn course_sessions(
        &self,
        caller: &Caller,
        course_id: &str,
    ) -> Result<Vec<crate::domain::catalog::CourseSession>, ServiceError> {
        found(&self.courses, course_id, "course").await?;
        let course = self.courses.call(course_id, CourseCommand::Get).await?;
        if !caller.may_modify(&course.trainer_id)
            && !self.enrolled(&caller.user_id, course_id).await?
        {
            return Err(
                DomainError::Forbidden("enroll in this course to see its sessions".into()).into(),
            );
        }
        Ok(course.sessions)
    }
}
