//! Offline bundles (issue in progress): the per-component image archive
//! ([`image_tar`]) is here; the bundle plan, cache, checksums and verification follow.

pub mod image_tar;
