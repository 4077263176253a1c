//! The `vulners` NSE script: its nested `<table>`/`<elem>` output ([`VTable`], [`VField`])
//! becomes the port's list of [`Vuln`]s.

use quick_xml::events::BytesStart;

use super::parser::{non_empty, Ctx, Parser};
use super::{Error, Vuln};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VField {
    Id,
    Cvss,
    Kind,
    IsExploit,
    CvssType,
}

/// A vulners `<table>`: either a CPE group (has `key`) or one entry (has `elem`s).
#[derive(Default)]
pub(super) struct VTable {
    pub(super) key: Option<String>,
    pub(super) id: Option<String>,
    pub(super) cvss: Option<f64>,
    pub(super) kind: Option<String>,
    pub(super) is_exploit: bool,
    pub(super) cvss_type: Option<String>,
}

impl Parser {
    pub(super) fn start_script(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let max = self.lim.max_scripts_per_port;
        if let Some(p) = self.port.as_mut() {
            p.scripts += 1;
            if p.scripts > max {
                return Err(self.limit("scripts", max));
            }
        }
        // Compare the raw id without decoding the (possibly large) `output` attribute.
        let mut vulners = false;
        self.attrs(e, &["id"], |_, v| vulners = v == "vulners")?;
        self.vtables.clear();
        Ok(Ctx::Script { vulners })
    }

    pub(super) fn start_vtable(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut key = None;
        self.attrs(e, &["key"], |_, v| key = non_empty(v))?;
        self.vtables.push(VTable {
            key,
            ..VTable::default()
        });
        Ok(Ctx::VTable)
    }

    pub(super) fn start_velem(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut field = None;
        self.attrs(e, &["key"], |_, v| {
            field = match &*v {
                "id" => Some(VField::Id),
                "cvss" => Some(VField::Cvss),
                "type" => Some(VField::Kind),
                "is_exploit" => Some(VField::IsExploit),
                "cvss_type" => Some(VField::CvssType),
                _ => None,
            }
        })?;
        self.text.clear();
        Ok(field.map_or(Ctx::Skip, Ctx::VElem))
    }

    pub(super) fn finish_vtable(&mut self) -> Result<(), Error> {
        let Some(t) = self.vtables.pop() else {
            return Ok(());
        };
        let Some(id) = t.id else { return Ok(()) }; // a CPE group, or an entry without id
        let cpe = self.vtables.last().and_then(|g| g.key.clone());
        let max = self.lim.max_vulns_per_port;
        if let Some(p) = self.port.as_mut() {
            if p.vulns.len() >= max {
                return Err(self.limit("vulns", max));
            }
            let vuln = Vuln {
                id,
                cvss: t.cvss.filter(|c| c.is_finite()),
                kind: t.kind,
                is_exploit: t.is_exploit,
                cpe,
                cvss_type: t.cvss_type,
            };
            p.vulns.push(vuln);
        }
        Ok(())
    }
}
