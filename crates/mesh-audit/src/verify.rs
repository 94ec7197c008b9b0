//! Verification: walk an organisation's chain from its checkpoint to its head, recomputing every
//! hash, and report the first row that does not fit.
//!
//! What each tampering looks like:
//! - a row edited in place → its recomputed hash differs from the stored one (`altered`);
//! - a row edited *and* re-hashed → the next row's `prev_hash` no longer matches (`broken_link`);
//! - a row deleted in the middle → a gap in `seq` (`missing`);
//! - rows deleted at the end → the chain stops before the recorded head (`missing`).
//!
//! What it cannot see: someone with write access who rewrites every row from the tampered one to
//! the head, and the head itself. Against that, keep the reported `headSeq`/`headHash` somewhere
//! the database's writers cannot reach (a ticket, a log pipeline): a later head must extend it.

use serde::Serialize;

use mesh_store::{AuditChain, Store, StoreError, AUDIT_GENESIS};

use crate::chain::row_hash;

/// Rows read per page.
const PAGE: i64 = 1_000;

/// Why the chain does not verify, at the first bad row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A row's content does not match its hash: it was edited.
    Altered,
    /// A row's `prev_hash` is not its predecessor's hash: the predecessor was replaced.
    BrokenLink,
    /// Rows are missing: deleted.
    Missing,
}

/// The first inconsistency found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The first bad seq (for `missing`, the first absent one).
    pub seq: i64,
    /// What is wrong.
    pub kind: ProblemKind,
    /// For people.
    pub detail: String,
}

/// The result of verifying one organisation's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyReport {
    /// Whether the chain is intact.
    pub ok: bool,
    /// The organisation.
    pub org_id: String,
    /// Rows whose hash was recomputed.
    pub rows_checked: u64,
    /// The last pruned seq: verification starts after it (0: nothing pruned).
    pub pruned_seq: i64,
    /// The head verified against.
    pub head_seq: i64,
    /// Its hash: keep it elsewhere to detect a wholesale rewrite later.
    pub head_hash: String,
    /// The first problem, when not ok.
    pub problem: Option<Problem>,
}

/// Verifies an organisation's chain. A chain pruned while being read is read again, so retention
/// running at the same moment is not mistaken for deletion.
pub async fn verify(store: &Store, org_id: &str) -> Result<VerifyReport, StoreError> {
    let mut attempts = 0;
    loop {
        let Some(chain) = store.audit_chain(org_id).await? else {
            return Ok(VerifyReport {
                ok: true,
                org_id: org_id.to_string(),
                rows_checked: 0,
                pruned_seq: 0,
                head_seq: 0,
                head_hash: AUDIT_GENESIS.to_string(),
                problem: None,
            });
        };
        let report = walk(store, &chain).await?;
        attempts += 1;
        if report.ok || attempts >= 3 {
            return Ok(report);
        }
        match store.audit_chain(org_id).await? {
            Some(now) if now.pruned_seq != chain.pruned_seq => continue,
            _ => return Ok(report),
        }
    }
}

async fn walk(store: &Store, chain: &AuditChain) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport {
        ok: false,
        org_id: chain.org_id.clone(),
        rows_checked: 0,
        pruned_seq: chain.pruned_seq,
        head_seq: chain.head_seq,
        head_hash: chain.head_hash.clone(),
        problem: None,
    };
    let fail = |mut r: VerifyReport, seq: i64, kind: ProblemKind, detail: String| {
        r.problem = Some(Problem { seq, kind, detail });
        Ok(r)
    };
    let mut expected = chain.pruned_seq + 1;
    let mut prev = chain.pruned_hash.clone();
    'pages: loop {
        let rows = store.audit_chain_rows(&chain.org_id, expected - 1, PAGE).await?;
        let last_page = (rows.len() as i64) < PAGE;
        for row in rows {
            // Rows appended after the head was read are the next verification's business.
            if row.seq > chain.head_seq {
                break 'pages;
            }
            if row.seq != expected {
                let detail = format!("rows {expected}..{} are missing (deleted)", row.seq - 1);
                return fail(report, expected, ProblemKind::Missing, detail);
            }
            if row.prev_hash != prev {
                let detail = format!("row {} does not link to row {}: one of them was replaced", row.seq, row.seq - 1);
                return fail(report, row.seq, ProblemKind::BrokenLink, detail);
            }
            let hash = row_hash(&row);
            if hash != row.hash {
                let detail = format!("row {}'s content does not match its hash: it was edited", row.seq);
                return fail(report, row.seq, ProblemKind::Altered, detail);
            }
            report.rows_checked += 1;
            prev = hash;
            expected += 1;
        }
        if last_page {
            break;
        }
    }
    if expected - 1 != chain.head_seq {
        let detail = format!("rows {expected}..{} are missing (deleted from the end)", chain.head_seq);
        return fail(report, expected, ProblemKind::Missing, detail);
    }
    if prev != chain.head_hash {
        let detail = format!("row {} does not match the recorded head hash", chain.head_seq);
        return fail(report, chain.head_seq, ProblemKind::BrokenLink, detail);
    }
    report.ok = true;
    Ok(report)
}
