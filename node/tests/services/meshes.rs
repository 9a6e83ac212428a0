//! The meshes domain of the service layer.

use tonic::Code;
use x0t_types::api::{CreateMesh, UpdateSettings};

use crate::testkit::{MESH, anchor, assert_error};
use x0t_node::service::ErrorKind;

#[tokio::test]
async fn meshes_are_created_read_and_updated_by_compare_and_set() {
    let a = anchor().await;
    let s = &a.service;
    let create = |name: &str| CreateMesh {
        name: name.to_owned(),
        description: "line 3".to_owned(),
        plan: None,
    };
    let mesh = s.create_mesh(&a.admin, create("factory")).await.unwrap();
    assert_eq!((mesh.name.as_str(), mesh.version), ("factory", 1));
    let names: Vec<String> = s
        .list_meshes(false)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, vec![MESH.to_owned(), "factory".to_owned()]);

    let error = s
        .create_mesh(&a.admin, create("factory"))
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::Conflict,
        "mesh_exists",
        409,
        Code::AlreadyExists,
    );
    let error = s
        .create_mesh(&a.admin, create("Bad Name"))
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::BadRequest,
        "bad_request",
        400,
        Code::InvalidArgument,
    );

    let update = |version| UpdateSettings {
        description: "line 4".to_owned(),
        expected_version: Some(version),
    };
    let updated = s
        .update_settings(&a.admin, "factory", update(1))
        .await
        .unwrap();
    assert_eq!(
        (updated.description.as_str(), updated.version),
        ("line 4", 2)
    );
    let error = s
        .update_settings(&a.admin, "factory", update(1))
        .await
        .unwrap_err();
    assert_error(
        &error,
        ErrorKind::Conflict,
        "version_mismatch",
        409,
        Code::FailedPrecondition,
    );
    let error = s.get_mesh("nowhere", true).await.unwrap_err();
    assert_error(
        &error,
        ErrorKind::NotFound,
        "no_such_mesh",
        404,
        Code::NotFound,
    );
    assert_eq!(s.get_mesh("factory", true).await.unwrap().version, 2);
    a.stop().await;
}
