//! The `COLLECTION_GATEWAYS_*` management tools: virtual MCPs over several connections.
//!
//! Same collection convention as connections: LIST answers `{items}`, GET `{item}`; CREATE and
//! UPDATE answer `{item, warnings}`, the warnings naming what the save could not verify (a member
//! that was down), which is not an error.

use crate::gateways::GatewayInput;
use crate::{Admin, AdminError};
use mesh_core::Principal;
use serde_json::{json, Map, Value};

/// Whether `name` is one of these tools.
pub(super) fn handles(name: &str) -> bool {
    name.starts_with("COLLECTION_GATEWAYS_") || name == "GATEWAY_CHECK"
}

/// Runs a gateway tool; `None` for a name this family does not have.
pub(super) async fn call(
    a: &Admin,
    p: &Principal,
    name: &str,
    mut args: Map<String, Value>,
) -> Option<Result<Value, AdminError>> {
    let saved = |s: crate::gateways::SavedGateway| json!({"item": s.item, "warnings": s.warnings});
    Some(match name {
        "COLLECTION_GATEWAYS_CREATE" => match input(args) {
            Ok(i) => a.create_gateway(p, i).await.map(saved),
            Err(e) => Err(e),
        },
        "GATEWAY_CHECK" => match input(args) {
            Ok(i) => a.check_gateway(p, i).await,
            Err(e) => Err(e),
        },
        "COLLECTION_GATEWAYS_LIST" => a.list_gateways(p).await.map(|v| json!({"items": v})),
        "COLLECTION_GATEWAYS_GET" => match id_arg(&args) {
            Ok(id) => a.get_gateway(p, &id).await.map(|v| json!({"item": v})),
            Err(e) => Err(e),
        },
        "COLLECTION_GATEWAYS_UPDATE" => match id_arg(&args) {
            Ok(id) => {
                args.remove("id");
                match input(args) {
                    Ok(i) => a.update_gateway(p, &id, i).await.map(saved),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
        "COLLECTION_GATEWAYS_DELETE" => match id_arg(&args) {
            Ok(id) => a.delete_gateway(p, &id).await.map(|id| json!({"deleted": true, "id": id})),
            Err(e) => Err(e),
        },
        _ => return None,
    })
}

fn input(args: Map<String, Value>) -> Result<GatewayInput, AdminError> {
    serde_json::from_value(Value::Object(args)).map_err(|e| AdminError::Invalid(format!("invalid arguments: {e}")))
}

fn id_arg(args: &Map<String, Value>) -> Result<String, AdminError> {
    args.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AdminError::Invalid("argument 'id' (gateway id or slug) is required".into()))
}
