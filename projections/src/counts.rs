//! The counts of calls, appointments and customers per tenant and per branch, summed in
//! memory over a batch and written once at its end, in the batch's transaction.
//!
//! Nearly every call and appointment moves a count, and most of them move the same few
//! tenant and branch rows; one statement per row per batch replaces two per event. No fold
//! reads these counts, so deferring them changes nothing the fold sees; live processing and
//! rebuilds both fold through here, and the batch's commit writes the sums with the rows and
//! the checkpoint.

use foldhash::HashMap;
use std::cell::RefCell;

use crate::sql::{SqlResult, Tx, params};

use crate::apply::Cx;

/// What a batch adds to one tenant's or branch's counts.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    calls: i64,
    appointments: i64,
    customers: i64,
}

/// The batch's sums so far, and so the rows known to exist in this transaction.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sums {
    tenants: HashMap<String, Tally>,
    branches: HashMap<(String, String), Tally>,
}

/// The counts one batch moves; one per transaction attempt (a batch retried carefully starts
/// from a new one, since its first attempt was rolled back).
#[derive(Default)]
pub(crate) struct BatchCounts {
    sums: RefCell<Sums>,
}

impl BatchCounts {
    /// The sums before an event applied under a savepoint; [`BatchCounts::restore`] undoes
    /// what the event added if the savepoint is rolled back.
    pub(crate) fn snapshot(&self) -> Sums {
        self.sums.borrow().clone()
    }

    pub(crate) fn restore(&self, sums: Sums) {
        *self.sums.borrow_mut() = sums;
    }

    pub(crate) fn add_call(
        &self,
        cx: &Cx<'_, '_>,
        tenant: &str,
        branch: Option<&str>,
    ) -> SqlResult<()> {
        self.tenant(cx, tenant, |t| t.calls += 1)?;
        if let Some(branch) = branch {
            self.branch(cx, tenant, branch, |t| t.calls += 1)?;
        }
        Ok(())
    }

    /// `tenant_delta` at the tenant, `delta` at the branch when one is given.
    pub(crate) fn add_appointment(
        &self,
        cx: &Cx<'_, '_>,
        tenant: &str,
        tenant_delta: i64,
        branch: Option<&str>,
        delta: i64,
    ) -> SqlResult<()> {
        self.tenant(cx, tenant, |t| t.appointments += tenant_delta)?;
        if let Some(branch) = branch {
            self.branch(cx, tenant, branch, |t| t.appointments += delta)?;
        }
        Ok(())
    }

    pub(crate) fn add_customer(&self, cx: &Cx<'_, '_>, tenant: &str) -> SqlResult<()> {
        self.tenant(cx, tenant, |t| t.customers += 1)
    }

    /// The first count a tenant gets in this batch makes sure its row exists, created by this
    /// event (its `seq`, its time) as when each count was its own upsert.
    fn tenant(&self, cx: &Cx<'_, '_>, tenant: &str, add: impl FnOnce(&mut Tally)) -> SqlResult<()> {
        let mut sums = self.sums.borrow_mut();
        if let Some(tally) = sums.tenants.get_mut(tenant) {
            add(tally);
            return Ok(());
        }
        cx.conn
            .prepare_cached(
                "INSERT INTO tenants (tenant_id, seq, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id) DO NOTHING",
            )?
            .execute(params![tenant, cx.seq(), cx.at])?;
        let mut tally = Tally::default();
        add(&mut tally);
        sums.tenants.insert(tenant.to_owned(), tally);
        Ok(())
    }

    fn branch(
        &self,
        cx: &Cx<'_, '_>,
        tenant: &str,
        branch: &str,
        add: impl FnOnce(&mut Tally),
    ) -> SqlResult<()> {
        let mut sums = self.sums.borrow_mut();
        let key = (tenant.to_owned(), branch.to_owned());
        if let Some(tally) = sums.branches.get_mut(&key) {
            add(tally);
            return Ok(());
        }
        cx.conn
            .prepare_cached(
                "INSERT INTO branches (tenant_id, branch_id, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_id, branch_id) DO NOTHING",
            )?
            .execute(params![tenant, branch, cx.at])?;
        let mut tally = Tally::default();
        add(&mut tally);
        sums.branches.insert(key, tally);
        Ok(())
    }

    /// Adds the batch's sums to the rows; called once, before the checkpoint moves.
    pub(crate) fn flush(&self, conn: &Tx<'_>) -> SqlResult<()> {
        let sums = std::mem::take(&mut *self.sums.borrow_mut());
        let mut tenants = conn.prepare_cached(
            "UPDATE tenants SET calls_count = calls_count + ?2,
                 appointments_count = appointments_count + ?3,
                 customers_count = customers_count + ?4
             WHERE tenant_id = ?1",
        )?;
        for (tenant, t) in &sums.tenants {
            if t.calls != 0 || t.appointments != 0 || t.customers != 0 {
                tenants.execute(params![tenant, t.calls, t.appointments, t.customers])?;
            }
        }
        let mut branches = conn.prepare_cached(
            "UPDATE branches SET calls_count = calls_count + ?3,
                 appointments_count = appointments_count + ?4
             WHERE tenant_id = ?1 AND branch_id = ?2",
        )?;
        for ((tenant, branch), t) in &sums.branches {
            if t.calls != 0 || t.appointments != 0 {
                branches.execute(params![tenant, branch, t.calls, t.appointments])?;
            }
        }
        Ok(())
    }
}
