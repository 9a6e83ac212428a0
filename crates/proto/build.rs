//! Compiles the protos with protox (pure Rust: no protoc needed) and generates tonic code.
//! Every `proto/x0t/v1/*.proto` is compiled: a domain's file is picked up by being there.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    for entry in std::fs::read_dir("proto/x0t/v1")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.ends_with(".proto") {
            files.push(format!("x0t/v1/{name}"));
        }
    }
    // The same order on every machine, so the generated code is too.
    files.sort();
    let descriptors = protox::compile(&files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
