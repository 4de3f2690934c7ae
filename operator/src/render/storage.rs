//! Embedded SQLite's PersistentVolumeClaim.

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::{Component, Ctx};
use super::names;

/// Default size of the embedded database's volume.
pub const DEFAULT_SIZE: &str = "1Gi";

pub(super) fn pvc(ctx: &Ctx<'_>) -> PersistentVolumeClaim {
    let storage = ctx.spec.database.as_ref().and_then(|d| d.storage.as_ref());
    let size = storage
        .and_then(|s| s.size.clone())
        .unwrap_or_else(|| DEFAULT_SIZE.to_owned());
    PersistentVolumeClaim {
        metadata: ctx.metadata(names::data_pvc(&ctx.name), Component::Database),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.and_then(|s| s.storage_class_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(
                    [("storage".to_owned(), Quantity(size))]
                        .into_iter()
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
