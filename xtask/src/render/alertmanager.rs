//! (stub, being written)
use anyhow::Result;
use super::{Ctx, Files};

pub fn render(_ctx: &Ctx<'_>, _files: &mut Files) -> Result<()> {
    Ok(())
}

/// (stub until the real config lands)
pub fn config(_ctx: &Ctx<'_>) -> serde_json::Value {
    serde_json::json!({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
}
