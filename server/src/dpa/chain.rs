//! The rules of sub-processor chains, over any view of the vendors: the database inside a write,
//! or an import's rows over what is stored.

use super::model::{VendorDef, VendorRole};
use super::store;
use crate::db::AnyConnection;
use crate::error::AppError;

/// A vendor that is not registered (409: the state decides).
pub(super) fn unknown_vendor(field: &str, id: &str) -> AppError {
    AppError::unmet(
        field,
        format!("{id:?} is not a registered vendor (see GET /v1/vendors)"),
    )
}

/// Where the parent rules look vendors up.
pub(super) trait Vendors {
    /// A vendor's latest version.
    fn latest(&mut self, id: &str) -> Result<Option<VendorDef>, AppError>;
    /// One vendor whose latest version names `id` as its parent, if any does.
    fn a_child(&mut self, id: &str) -> Result<Option<String>, AppError>;
}

impl Vendors for AnyConnection {
    fn latest(&mut self, id: &str) -> Result<Option<VendorDef>, AppError> {
        Ok(store::latest_vendor(self, id)?
            .map(|r| r.def())
            .transpose()?)
    }

    fn a_child(&mut self, id: &str) -> Result<Option<String>, AppError> {
        Ok(store::children(self, id)?.into_iter().next().map(|r| r.id))
    }
}

/// The parent a sub-processor names is a registered processor (or sub-processor), and the chain
/// up from it reaches a processor within [`super::index::MAX_CHAIN`] links without coming back to
/// this vendor. A vendor that others work for stays a processor or sub-processor.
pub(super) fn check_parent(c: &mut impl Vendors, def: &VendorDef) -> Result<(), AppError> {
    if !matches!(def.role, VendorRole::Processor | VendorRole::SubProcessor)
        && let Some(child) = c.a_child(&def.id)?
    {
        return Err(AppError::unmet(
            "role",
            format!(
                "{child:?} works for {:?}: a vendor with sub-processors is a processor or a sub-processor",
                def.id
            ),
        ));
    }
    let Some(parent) = &def.parent else {
        return Ok(());
    };
    let mut at = parent.clone();
    for _ in 0..super::index::MAX_CHAIN {
        if at == def.id {
            return Err(AppError::unmet(
                "parent",
                format!(
                    "{parent:?} works (in turn) for {:?}: the chain would be a circle",
                    def.id
                ),
            ));
        }
        let v = c
            .latest(&at)?
            .ok_or_else(|| unknown_vendor("parent", &at))?;
        match (v.role, v.parent) {
            (VendorRole::Processor, _) => return Ok(()),
            (VendorRole::SubProcessor, Some(next)) => at = next,
            (role, _) => {
                return Err(AppError::unmet(
                    "parent",
                    format!("{at:?} is a {role}; a sub-processor works for a processor"),
                ));
            }
        }
    }
    Err(AppError::unmet(
        "parent",
        format!(
            "{parent:?} is more than {} links of sub-processors away from a processor",
            super::index::MAX_CHAIN
        ),
    ))
}
