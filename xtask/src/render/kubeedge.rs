//! (stub, being written)
use anyhow::Result;
use super::{Ctx, Files};

pub fn render(_ctx: &Ctx<'_>, _files: &mut Files) -> Result<()> {
    Ok(())
}
