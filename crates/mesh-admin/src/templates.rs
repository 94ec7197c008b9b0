//! The stdio template catalogue: commands an installation operator publishes, so that an
//! organisation's admins can add "the filesystem server" without being able to run any program
//! on the host. A template fixes the program and every argument; the organisation supplies only
//! the values of the environment variables the template names (sealed in the vault per
//! connection). A connection copies the command line when it is made, so withdrawing or changing
//! a template never changes what an existing connection runs.

use crate::{Admin, AdminError};
use mesh_core::{id, slug, Principal};
use mesh_store::StdioTemplate;
use serde::Deserialize;

/// Most arguments a template may fix.
const MAX_ARGS: usize = 64;

/// What an operator gives to publish a template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TemplateInput {
    /// Unique name, a slug.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The program.
    pub command: String,
    /// Its fixed arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variable names an organisation supplies values for.
    #[serde(default)]
    pub env: Vec<String>,
}

impl Admin {
    /// Publishes a template (operators only).
    pub async fn create_template(&self, p: &Principal, input: TemplateInput) -> Result<StdioTemplate, AdminError> {
        self.trust.check_catalogue(p)?;
        slug::validate(&input.name).map_err(|e| AdminError::Invalid(format!("name: {e}")))?;
        crate::connections::validate_command(&input.command, &input.args)?;
        if input.args.len() > MAX_ARGS {
            return Err(AdminError::Invalid(format!("args: at most {MAX_ARGS} arguments")));
        }
        for name in &input.env {
            crate::connections::validate_env_name(name)?;
        }
        let now = id::now_ms();
        let t = StdioTemplate {
            name: input.name,
            description: input.description.filter(|d| !d.is_empty()),
            command: input.command,
            args: input.args,
            env: input.env,
            created_at: now,
            updated_at: now,
        };
        self.store.create_template(&t).await?;
        tracing::info!(template = %t.name, command = %t.command, "stdio template published");
        Ok(t)
    }

    /// Every template; anyone who may manage connections may read the catalogue.
    pub async fn list_templates(&self, _p: &Principal) -> Result<Vec<StdioTemplate>, AdminError> {
        Ok(self.store.list_templates().await?)
    }

    /// One template by name.
    pub async fn get_template(&self, _p: &Principal, name: &str) -> Result<StdioTemplate, AdminError> {
        self.store.get_template(name).await?.ok_or_else(|| AdminError::NotFound(format!("template '{name}'")))
    }

    /// Withdraws a template (operators only); connections made from it keep running.
    pub async fn delete_template(&self, p: &Principal, name: &str) -> Result<(), AdminError> {
        self.trust.check_catalogue(p)?;
        if !self.store.delete_template(name).await? {
            return Err(AdminError::NotFound(format!("template '{name}'")));
        }
        tracing::info!(template = %name, "stdio template withdrawn");
        Ok(())
    }
}
