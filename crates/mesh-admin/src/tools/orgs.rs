//! The `ORGANIZATION_*` and `ORGANIZATION_MEMBER_*` management tools (names from the seed).

use super::{opt_str, parse, req_str};
use crate::orgs::MemberInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    name.starts_with("ORGANIZATION_")
}

/// Runs an organisation tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    let run = async {
        match name {
            "ORGANIZATION_CREATE" => {
                let (item, key) = a.create_org(p, req_str(&args, "slug")?, opt_str(&args, "name")?).await?;
                Ok(
                    json!({"item": item, "key": key, "note": "This owner key of the new organisation is shown only now; store it safely."}),
                )
            }
            "ORGANIZATION_LIST" => Ok(json!({"items": a.list_orgs(p).await?})),
            "ORGANIZATION_GET" => Ok(json!({"item": a.get_org(p, opt_str(&args, "id")?).await?})),
            "ORGANIZATION_UPDATE" => {
                let item =
                    a.update_org(p, opt_str(&args, "id")?, opt_str(&args, "name")?, opt_str(&args, "slug")?).await?;
                Ok(json!({"item": item}))
            }
            "ORGANIZATION_DELETE" => {
                let id = a.delete_org(p, req_str(&args, "id")?, req_str(&args, "confirm")?).await?;
                Ok(json!({"deleted": true, "id": id}))
            }
            "ORGANIZATION_MEMBER_ADD" => {
                Ok(json!({"item": a.add_member(p, parse::<MemberInput>(args.clone())?).await?}))
            }
            "ORGANIZATION_MEMBER_LIST" => Ok(json!({"items": a.list_members(p).await?})),
            "ORGANIZATION_MEMBER_UPDATE_ROLE" => {
                let item = a.update_member_role(p, req_str(&args, "user")?, req_str(&args, "role")?).await?;
                Ok(json!({"item": item}))
            }
            "ORGANIZATION_MEMBER_REMOVE" => {
                let user = a.remove_member(p, req_str(&args, "user")?).await?;
                Ok(json!({"deleted": true, "userId": user}))
            }
            _ => Err(AdminError::NotFound(String::new())),
        }
    };
    match name {
        "ORGANIZATION_CREATE"
        | "ORGANIZATION_LIST"
        | "ORGANIZATION_GET"
        | "ORGANIZATION_UPDATE"
        | "ORGANIZATION_DELETE"
        | "ORGANIZATION_MEMBER_ADD"
        | "ORGANIZATION_MEMBER_LIST"
        | "ORGANIZATION_MEMBER_UPDATE_ROLE"
        | "ORGANIZATION_MEMBER_REMOVE" => Some(run.await),
        _ => None,
    }
}

fn object(properties: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// Their definitions.
pub(super) fn definitions() -> Vec<Value> {
    let user = json!({"type": "string", "description": "The member's user id or email."});
    let read = json!({"readOnlyHint": true});
    vec![
        json!({"name": "ORGANIZATION_CREATE", "description": "Create an organisation (owners and admins). You become its owner; the answer carries an owner key for it, shown once — keys act in one organisation only.",
               "inputSchema": object(json!({"slug": {"type": "string"}, "name": {"type": "string"}}), &["slug"])}),
        json!({"name": "ORGANIZATION_LIST", "description": "List the organisations you belong to, with your role in each.",
               "inputSchema": object(json!({}), &[]), "annotations": read}),
        json!({"name": "ORGANIZATION_GET", "description": "Get the organisation your key acts in (by id or slug, or without arguments).",
               "inputSchema": object(json!({"id": {"type": "string"}}), &[]), "annotations": read}),
        json!({"name": "ORGANIZATION_UPDATE", "description": "Rename the organisation (owners and admins).",
               "inputSchema": object(json!({"id": {"type": "string"}, "name": {"type": "string"}, "slug": {"type": "string"}}), &[])}),
        json!({"name": "ORGANIZATION_DELETE", "description": "Delete the organisation and everything in it except its audit trail (owners). confirm must repeat its slug.",
               "inputSchema": object(json!({"id": {"type": "string"}, "confirm": {"type": "string"}}), &["id", "confirm"]),
               "annotations": {"destructiveHint": true}}),
        json!({"name": "ORGANIZATION_MEMBER_ADD", "description": "Add a member by email with a role (owner, admin, member, viewer or a custom role). A new email creates a local user; a password, if given, is hashed with argon2id. Only owners add owners.",
               "inputSchema": object(json!({"email": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"},
                                            "password": {"type": "string", "description": "For a new user only; at least 12 characters."}}), &["email", "role"])}),
        json!({"name": "ORGANIZATION_MEMBER_LIST", "description": "List the organisation's members and their roles.",
               "inputSchema": object(json!({}), &[]), "annotations": read}),
        json!({"name": "ORGANIZATION_MEMBER_UPDATE_ROLE", "description": "Change a member's role (owners and admins; only owners change owners; the last owner stays). Their open sessions end.",
               "inputSchema": object(json!({"user": user, "role": {"type": "string"}}), &["user", "role"])}),
        json!({"name": "ORGANIZATION_MEMBER_REMOVE", "description": "Remove a member; their API keys in this organisation are deleted with the membership.",
               "inputSchema": object(json!({"user": user}), &["user"]), "annotations": {"destructiveHint": true}}),
    ]
}
