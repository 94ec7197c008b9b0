//! Organisations, users and memberships.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{Backend, Membership, Org, Store, StoreError, User};

const ORG_COLUMNS: &str = "id, slug, name, created_at";
const USER_COLUMNS: &str = "id, email, name, password_hash, created_at";
const MEMBERSHIP_COLUMNS: &str = "org_id, user_id, role, created_at";

/// How a change to a membership ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Made.
    Done,
    /// The user is not a member of that organisation; nothing changed.
    NotMember,
    /// The member is the organisation's last owner; nothing changed.
    LastOwner,
}

impl Store {
    /// Inserts an organisation; `Conflict` if its slug or id is taken.
    pub async fn create_org(&self, org: &Org) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO orgs (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org.id)
            .bind(&org.slug)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| on_write(e, |what| org_conflict(org, what), "organisation refers to a missing object"))?;
        Ok(())
    }

    /// One organisation by id.
    pub async fn get_org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(org_from_row).transpose()?)
    }

    /// One organisation by slug.
    pub async fn get_org_by_slug(&self, slug: &str) -> Result<Option<Org>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE slug = $1");
        let row = sqlx::query(&sql).bind(slug).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(org_from_row).transpose()?)
    }

    /// Renames an organisation (slug and name, matched by `org.id`; `created_at` is kept).
    /// Returns whether it exists; `Conflict` if the new slug is taken.
    pub async fn update_org(&self, org: &Org) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE orgs SET slug = $1, name = $2 WHERE id = $3")
            .bind(&org.slug)
            .bind(&org.name)
            .bind(&org.id)
            .execute(&self.pool)
            .await
            .map_err(|e| on_write(e, |what| org_conflict(org, what), "organisation refers to a missing object"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes an organisation and, through the schema's `ON DELETE CASCADE`, everything it owns:
    /// memberships and their keys, connections and their secrets, gateways, roles, rate limits.
    /// Its audit trail stays (it has no foreign keys on purpose, see migration 0002). Returns
    /// whether it existed.
    pub async fn delete_org(&self, id: &str) -> Result<bool, StoreError> {
        // One statement, so the cascade is atomic on both databases; on SQLite it relies on
        // `PRAGMA foreign_keys = ON`, which `connect` sets on every pooled connection.
        let done = sqlx::query("DELETE FROM orgs WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }

    /// The organisations a user belongs to, oldest first, each with the user's role there.
    pub async fn orgs_of_user(&self, user_id: &str) -> Result<Vec<(Org, String)>, StoreError> {
        let sql = "SELECT o.id, o.slug, o.name, o.created_at, m.role FROM memberships m \
                   JOIN orgs o ON o.id = m.org_id WHERE m.user_id = $1 ORDER BY o.created_at, o.id";
        let rows = sqlx::query(sql).bind(user_id).fetch_all(&self.pool).await?;
        rows.iter().map(|row| Ok((org_from_row(row)?, row.try_get("role")?))).collect()
    }

    /// Every organisation, oldest first.
    pub async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(org_from_row).collect::<Result<_, _>>()?)
    }

    /// Inserts a user; `Conflict` if the email or id is taken.
    pub async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&user.id)
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.password_hash.as_deref())
            .bind(user.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                on_write(
                    e,
                    |what| {
                        if what.contains("email") {
                            format!("a user with email '{}' already exists", user.email)
                        } else {
                            format!("user '{}' already exists", user.id)
                        }
                    },
                    "user refers to a missing object",
                )
            })?;
        Ok(())
    }

    /// One user by id.
    pub async fn get_user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// One user by email, compared exactly (callers normalise it before storing and looking up).
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row = sqlx::query(&sql).bind(email).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    /// Records who chose a user's password: `Some(org_id)` when an organisation's admin did,
    /// `None` when the user (or an operator) did.
    pub async fn set_password_origin(&self, user_id: &str, org_id: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET password_set_by = $1 WHERE id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The organisation whose admin chose this user's password, if one did.
    pub async fn password_origin(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT password_set_by FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>("password_set_by")).transpose()?.flatten())
    }

    /// Sets (or, with `None`, clears) a user's password hash. Returns whether the user exists.
    pub async fn set_password_hash(&self, user_id: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Makes a user a member of an organisation; `Conflict` if they already are, `Invalid` if
    /// either does not exist.
    pub async fn add_member(&self, m: &Membership) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO memberships (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&m.org_id)
            .bind(&m.user_id)
            .bind(&m.role)
            .bind(m.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                on_write(
                    e,
                    |_| format!("user '{}' is already a member of organisation '{}'", m.user_id, m.org_id),
                    "membership refers to a missing organisation or user",
                )
            })?;
        Ok(())
    }

    /// A user's membership of an organisation, if any.
    pub async fn get_membership(&self, org_id: &str, user_id: &str) -> Result<Option<Membership>, StoreError> {
        let sql = format!("SELECT {MEMBERSHIP_COLUMNS} FROM memberships WHERE org_id = $1 AND user_id = $2");
        let row = sqlx::query(&sql).bind(org_id).bind(user_id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(membership_from_row).transpose()?)
    }

    /// The members of an organisation with their memberships, longest-standing first (ties by
    /// user id, so the order is stable).
    pub async fn list_members(&self, org_id: &str) -> Result<Vec<(User, Membership)>, StoreError> {
        // The membership's `created_at` is renamed: the user's own column keeps its name, so
        // `user_from_row` reads this row as it reads a plain `users` row.
        let sql = "SELECT u.id, u.email, u.name, u.password_hash, u.created_at, \
                   m.org_id, m.user_id, m.role, m.created_at AS member_since \
                   FROM memberships m JOIN users u ON u.id = m.user_id \
                   WHERE m.org_id = $1 ORDER BY m.created_at, m.user_id";
        let rows = sqlx::query(sql).bind(org_id).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let m = Membership {
                    org_id: row.try_get("org_id")?,
                    user_id: row.try_get("user_id")?,
                    role: row.try_get("role")?,
                    created_at: row.try_get("member_since")?,
                };
                Ok((user_from_row(row)?, m))
            })
            .collect()
    }

    /// Changes a member's role, refusing to take the organisation's last owner away.
    pub async fn update_member_role(
        &self,
        org_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<MemberChange, StoreError> {
        self.change_member(org_id, user_id, Some(role)).await
    }

    /// Removes a member, refusing to remove the organisation's last owner; their keys in that
    /// organisation go with the membership (the schema cascades). The user stays, as do their
    /// other memberships.
    pub async fn remove_member(&self, org_id: &str, user_id: &str) -> Result<MemberChange, StoreError> {
        self.change_member(org_id, user_id, None).await
    }

    /// Sets (`Some`) or removes (`None`) a membership in one transaction with the owner count.
    /// Counting first and writing after would let two owners demote each other at once and leave
    /// nobody, so the changes of one organisation are serialised: on PostgreSQL by locking its
    /// row, on SQLite by taking the database's write lock at `BEGIN`.
    async fn change_member(&self, org_id: &str, user_id: &str, role: Option<&str>) -> Result<MemberChange, StoreError> {
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT id FROM orgs WHERE id = $1 FOR UPDATE")
                    .bind(org_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx
            }
        };
        let old: Option<String> = sqlx::query("SELECT role FROM memberships WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| row.try_get("role"))
            .transpose()?;
        let Some(old) = old else { return Ok(MemberChange::NotMember) };
        match role {
            Some(role) => sqlx::query("UPDATE memberships SET role = $1 WHERE org_id = $2 AND user_id = $3").bind(role),
            None => sqlx::query("DELETE FROM memberships WHERE org_id = $1 AND user_id = $2"),
        }
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if old == "owner" && role != Some("owner") {
            let owners = count_with_role(&mut *tx, org_id, "owner").await?;
            if owners == 0 {
                tx.rollback().await?;
                return Ok(MemberChange::LastOwner);
            }
        }
        tx.commit().await?;
        Ok(MemberChange::Done)
    }

    /// How many members of an organisation hold `role` (the last-owner rule of `change_member`
    /// counts the same way, inside its transaction).
    pub async fn count_members_with_role(&self, org_id: &str, role: &str) -> Result<i64, StoreError> {
        Ok(count_with_role(&self.pool, org_id, role).await?)
    }
}

/// The count behind [`Store::count_members_with_role`], on the pool or inside a transaction
/// (the last-owner check of `change_member` counts under its own lock).
async fn count_with_role<'e, E>(exec: E, org_id: &str, role: &str) -> Result<i64, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("SELECT COUNT(*) AS n FROM memberships WHERE org_id = $1 AND role = $2")
        .bind(org_id)
        .bind(role)
        .fetch_one(exec)
        .await?
        .try_get("n")
}

fn org_conflict(org: &Org, what: &str) -> String {
    if what.contains("slug") {
        format!("organisation slug '{}' already exists", org.slug)
    } else {
        format!("organisation '{}' already exists", org.id)
    }
}

fn org_from_row(row: &AnyRow) -> Result<Org, sqlx::Error> {
    Ok(Org {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn user_from_row(row: &AnyRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

fn membership_from_row(row: &AnyRow) -> Result<Membership, sqlx::Error> {
    Ok(Membership {
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
    })
}
