//! The pages, one module per area of the navigation.

pub(crate) mod access;
pub(crate) mod audit;
pub(crate) mod connections;
pub(crate) mod gateways;
pub(crate) mod login;
pub(crate) mod overview;
pub mod playground;
pub(crate) mod settings;
