//! The scoring checklist: sheet layout parsing and its two sources (Google Sheets, CSV).
