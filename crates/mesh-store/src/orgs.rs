//! Organisations, users and memberships.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::on_write;
use crate::{Membership, Org, Store, StoreError, User};

const ORG_COLUMNS: &str = "id, slug, name, created_at";
const USER_COLUMNS: &str = "id, email, name, password_hash, created_at";
const MEMBERSHIP_COLUMNS: &str = "org_id, user_id, role, created_at";

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
            .map_err(|e| {
                on_write(
                    e,
                    |what| {
                        if what.contains("slug") {
                            format!("organisation slug '{}' already exists", org.slug)
                        } else {
                            format!("organisation '{}' already exists", org.id)
                        }
                    },
                    "organisation refers to a missing object",
                )
            })?;
        Ok(())
    }

    /// One organisation by id.
    pub async fn get_org(&self, id: &str) -> Result<Option<Org>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
        let row = sqlx::query(&sql).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(org_from_row).transpose()?)
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
