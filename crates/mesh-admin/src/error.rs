//! Errors of management operations.

use mesh_core::Fault;

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The input is invalid; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The caller's role does not allow this operation.
    #[error("permission denied: {0}")]
    Forbidden(&'static str),
    /// No such object in the caller's organisation.
    #[error("{0} not found")]
    NotFound(String),
    /// A unique name is taken.
    #[error("{0}")]
    Conflict(String),
    /// Storage failed.
    #[error(transparent)]
    Store(mesh_store::StoreError),
    /// The vault failed (a key is missing, or a ciphertext does not open).
    #[error("vault: {0}")]
    Vault(#[from] mesh_vault::VaultError),
    /// Connections need the user's authorization at their servers first (upstream OAuth): the
    /// links to give it at.
    #[error("{}", mesh_relay::RelayError::AuthorizationRequired(.0.clone()))]
    AuthorizationRequired(Vec<mesh_relay::AuthorizationLink>),
    /// An upstream's authorization server failed or refused (upstream OAuth); the message
    /// names it and the OAuth error, never a token.
    #[error("{0}")]
    UpstreamAuth(String),
}

impl From<mesh_store::StoreError> for AdminError {
    fn from(e: mesh_store::StoreError) -> Self {
        match e {
            mesh_store::StoreError::Conflict(m) => AdminError::Conflict(m),
            mesh_store::StoreError::NotFound => AdminError::NotFound("object".into()),
            mesh_store::StoreError::Invalid(m) => AdminError::Invalid(m),
            other => AdminError::Store(other),
        }
    }
}

impl AdminError {
    /// Whose fault it is.
    pub fn fault(&self) -> Fault {
        match self {
            AdminError::Invalid(_) | AdminError::NotFound(_) | AdminError::Conflict(_) => Fault::Downstream,
            AdminError::Forbidden(_) => Fault::Policy,
            AdminError::Store(_) | AdminError::Vault(_) => Fault::Internal,
            AdminError::AuthorizationRequired { .. } => Fault::Policy,
            AdminError::UpstreamAuth(_) => Fault::Upstream,
        }
    }

    /// What the caller may be shown: internal failures are logged in full and summarised here.
    pub fn public_message(&self) -> String {
        match self.fault() {
            Fault::Internal => {
                tracing::error!(error = %self, "management operation failed");
                "internal error (see the mesh log)".to_string()
            }
            _ => self.to_string(),
        }
    }
}
