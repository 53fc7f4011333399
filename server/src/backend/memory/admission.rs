//! The embedded backend's admission controls: kept under each event's lock
//! beside its line (see [`crate::backend::admission`]).

use super::MemoryBackend;
use crate::backend::admission::{Admission, AdmissionChange, AdmissionView};
use crate::error::Result;

impl Admission for MemoryBackend {
    async fn admission(&self, event_id: &str) -> Result<AdmissionView> {
        Ok(self.cell(event_id)?.admission_view())
    }

    async fn set_admission(&self, event_id: &str, change: &AdmissionChange) -> Result<()> {
        self.cell(event_id)?.set_admission(change);
        Ok(())
    }
}
