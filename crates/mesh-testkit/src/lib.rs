//! stub

pub mod rmcp_client;
