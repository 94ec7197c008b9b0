//! The `COLLECTION_TEMPLATES_*` management tools: the operators' stdio command catalogue.

use super::{parse, req_str};
use crate::templates::TemplateInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    name.starts_with("COLLECTION_TEMPLATES_")
}

/// Runs a template tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    let run = async {
        match name {
            "COLLECTION_TEMPLATES_CREATE" => {
                Ok(json!({"item": a.create_template(p, parse::<TemplateInput>(args.clone())?).await?}))
            }
            "COLLECTION_TEMPLATES_LIST" => Ok(json!({"items": a.list_templates(p).await?})),
            "COLLECTION_TEMPLATES_GET" => Ok(json!({"item": a.get_template(p, req_str(&args, "name")?).await?})),
            "COLLECTION_TEMPLATES_DELETE" => {
                let name = req_str(&args, "name")?;
                a.delete_template(p, name).await?;
                Ok(json!({"deleted": true, "name": name}))
            }
            _ => Err(AdminError::NotFound(String::new())),
        }
    };
    match name {
        "COLLECTION_TEMPLATES_CREATE"
        | "COLLECTION_TEMPLATES_LIST"
        | "COLLECTION_TEMPLATES_GET"
        | "COLLECTION_TEMPLATES_DELETE" => Some(run.await),
        _ => None,
    }
}

/// Their definitions.
pub(super) fn definitions() -> Vec<Value> {
    let name = json!({"type": "string", "description": "The template's name."});
    let read = json!({"readOnlyHint": true});
    let object = |properties: Value, required: &[&str]| json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false});
    vec![
        json!({"name": "COLLECTION_TEMPLATES_CREATE", "description": "Publish a stdio command template (installation operators only): a program and its fixed arguments, and the environment variables an organisation supplies. Organisation admins make stdio connections only from these.",
               "inputSchema": object(json!({"name": name, "description": {"type": "string"}, "command": {"type": "string"},
                                            "args": {"type": "array", "items": {"type": "string"}},
                                            "env": {"type": "array", "items": {"type": "string"}, "description": "Names of environment variables the organisation supplies (values go to the vault)."}}),
                                     &["name", "command"])}),
        json!({"name": "COLLECTION_TEMPLATES_LIST", "description": "List the stdio command templates published by the installation's operators.",
               "inputSchema": object(json!({}), &[]), "annotations": read}),
        json!({"name": "COLLECTION_TEMPLATES_GET", "description": "Get one stdio command template.",
               "inputSchema": object(json!({"name": name}), &["name"]), "annotations": read}),
        json!({"name": "COLLECTION_TEMPLATES_DELETE", "description": "Withdraw a stdio command template (operators only). Connections made from it keep running.",
               "inputSchema": object(json!({"name": name}), &["name"]), "annotations": {"destructiveHint": true}}),
    ]
}
