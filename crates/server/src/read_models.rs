//! The server's async face of the read models: queries run on the blocking pool, so a slow
//! SQLite read never stalls the ingest path's reactor threads; only lookups whose reads an
//! index bounds run on the handler's own thread (`ReadModelHandle::lookup`).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use switchboard_intake::BranchRef;
use switchboard_projections::{
    DEFAULT_TIME_ZONE, ProjectionError, ReadModels, default_opening_hours,
};
use tokio::sync::Semaphore;

use crate::Error;
use crate::availability::{Busy, OpeningHours};

/// Read-model queries in flight at once: the read models keep this many connections; more
/// concurrent queries would each open (and parse the schema of) a connection of their own.
const CONCURRENT_QUERIES: usize = 8;

#[derive(Clone)]
pub struct ReadModelHandle {
    inner: Arc<ReadModels>,
    permits: Arc<Semaphore>,
}

impl From<ProjectionError> for Error {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::BadCursor(_) => {
                Error::bad_request("invalid_cursor", error.to_string())
            }
            ProjectionError::BadLimit(_) => Error::bad_request("invalid_limit", error.to_string()),
            _ if error.is_database_trouble() => Error::ReadModelsUnavailable(error.to_string()),
            other => Error::ReadModels(other.to_string()),
        }
    }
}

impl ReadModelHandle {
    pub fn new(read_models: ReadModels) -> Self {
        ReadModelHandle {
            inner: Arc::new(read_models),
            permits: Arc::new(Semaphore::new(CONCURRENT_QUERIES)),
        }
    }

    /// Runs a query on the blocking pool.
    pub async fn query<T: Send + 'static>(
        &self,
        query: impl FnOnce(&ReadModels) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Error::Internal(format!("read-model queries closed: {e}")))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            query(&inner)
        })
        .await
        .map_err(|e| Error::Internal(format!("read-model query panicked: {e}")))?
        .map_err(Error::from)
    }

    /// Runs a lookup by key (one row, or a range an index bounds) on this thread when a query
    /// permit is free and the read models can answer without a wait
    /// ([`ReadModels::without_waiting`]: a local SQLite file, an idle connection, no lock):
    /// it takes microseconds, less than the hop to the blocking pool and back. Otherwise, and
    /// always for read models in PostgreSQL, it runs as a [`ReadModelHandle::query`].
    async fn lookup<T: Send + 'static>(
        &self,
        query: impl Fn(&ReadModels) -> Result<T, ProjectionError> + Send + 'static,
    ) -> Result<T, Error> {
        if let Ok(_permit) = self.permits.try_acquire()
            && let Some(result) = self.inner.without_waiting(&query)
        {
            return result.map_err(Error::from);
        }
        self.query(query).await
    }

    pub async fn tenant_for_token_hash(&self, hash: &str) -> Result<Option<String>, Error> {
        let hash = hash.to_owned();
        self.query(move |rm| rm.tenant_by_token_hash(&hash)).await
    }

    /// The branch a call's business number belongs to, for the time zone of the caller's
    /// appointment.
    pub async fn branch_for_number(&self, number: &str) -> Result<Option<BranchRef>, Error> {
        let number = number.to_owned();
        // On every call delivery that names a business number.
        let owner = self.lookup(move |rm| rm.number_owner(&number)).await?;
        Ok(owner.and_then(|owner| {
            Some(BranchRef {
                tenant_id: owner.tenant_id,
                branch_id: owner.branch_id?,
                time_zone: owner.time_zone.and_then(|zone| zone.parse::<Tz>().ok()),
            })
        }))
    }

    /// What `check_availability` needs: the booked slots and opening hours of the branch the
    /// call rang at (the owner of its business number, else the call's recorded branch), and
    /// how long `service` usually takes there when one is named. A call no tenant owns yet
    /// gets the default week, no bookings and no service length. Each of its queries reads
    /// what an index bounds however long the tenant's history (the calendar from the window's
    /// start on, a service's latest sample), so it runs as a [`ReadModelHandle::lookup`]: the
    /// agent is waiting on the phone, and the hop to the blocking pool and back cost the
    /// function calls 0.7–2.2 ms at the median at 5,000 deliveries/s (2026-12-07,
    /// docs/benchmarks.md).
    pub async fn availability_inputs(
        &self,
        call_id: &str,
        business_number: Option<&str>,
        service: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<AvailabilityInputs, Error> {
        let call_id = call_id.to_owned();
        let business_number = business_number.map(str::to_owned);
        let service = service.map(str::to_owned);
        let availability = self
            .lookup(move |rm| {
                let owner = match business_number.as_deref() {
                    Some(number) => rm
                        .number_owner(number)?
                        .map(|owner| (owner.tenant_id, owner.branch_id)),
                    None => None,
                };
                let owner = match owner {
                    Some(owner) => Some(owner),
                    None => rm
                        .call(&call_id)?
                        .and_then(|call| Some((call.tenant_id?, call.branch_id))),
                };
                let Some((tenant_id, branch_id)) = owner else {
                    return Ok(None);
                };
                // Staff is matched by name in `availability::check`, which knows that "Marie"
                // and "Marie Schmidt" are one person.
                let availability =
                    rm.availability(&tenant_id, branch_id.as_deref(), None, from, to)?;
                let service_minutes = match &service {
                    Some(service) => rm.service_minutes(&tenant_id, service)?,
                    None => None,
                };
                Ok(Some((availability, service_minutes)))
            })
            .await?;
        let Some((availability, service_minutes)) = availability else {
            return Ok(AvailabilityInputs {
                busy: Vec::new(),
                hours: OpeningHours::weekly(default_zone(), &default_opening_hours()),
                service_length: None,
            });
        };
        // The read models give the default week for a branch that registered none.
        let zone = availability
            .time_zone
            .parse::<Tz>()
            .unwrap_or_else(|_| default_zone());
        let hours = OpeningHours::weekly(zone, &availability.opening_hours);
        let busy = availability
            .busy
            .iter()
            .filter_map(|slot| {
                Some(Busy {
                    start: parse_time(&slot.start)?,
                    end: parse_time(&slot.end)?,
                    staff: slot.staff.clone(),
                })
            })
            .collect();
        Ok(AvailabilityInputs {
            busy,
            hours,
            service_length: service_minutes.map(chrono::Duration::minutes),
        })
    }
}

/// What [`ReadModelHandle::availability_inputs`] gathers.
pub struct AvailabilityInputs {
    pub busy: Vec<Busy>,
    pub hours: OpeningHours,
    /// How long the named service usually takes at the tenant (see
    /// `ReadModels::service_minutes`); None when no service was named or none was recorded.
    pub service_length: Option<chrono::Duration>,
}

fn default_zone() -> Tz {
    DEFAULT_TIME_ZONE
        .parse()
        .expect("the read models' default zone is an IANA name")
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn an_unreachable_read_model_database_is_a_503_and_a_bad_cursor_a_400() {
        let down = Error::from(ProjectionError::Connect(
            "read models in PostgreSQL schema x: connection refused".into(),
        ));
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(down.code(), "read_models_unavailable");
        let cursor = Error::from(ProjectionError::BadCursor("zz".into()));
        assert_eq!(cursor.status(), StatusCode::BAD_REQUEST);
    }
}
