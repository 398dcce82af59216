//! placeholder
/// placeholder
#[derive(Clone)]
pub struct AppState;
