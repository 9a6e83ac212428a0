//! Embeds the browser console (`ui/dist`, built by `scripts/build-ui`) into the binary: each
//! file and its gzip copy become a static byte array. Without a built console the binary
//! still builds; its `/` then says how to build the console instead.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = Path::new(&manifest).join("../ui/dist");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("ui_assets.rs");
    let mut code = String::from("/// The console's files.\n");
    code.push_str("pub(crate) static UI_ASSETS: &[Asset] = &[\n");
    if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
        let mut names: Vec<String> = std::fs::read_dir(&dist)
            .expect("ui/dist is readable")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.ends_with(".gz"))
            .collect();
        names.sort();
        for name in names {
            let file = dist
                .join(&name)
                .canonicalize()
                .expect("ui/dist file resolves");
            let gz = dist.join(format!("{name}.gz"));
            let gz = if gz.is_file() {
                format!(
                    "Some(include_bytes!({:?}))",
                    gz.canonicalize().expect("gzip copy resolves")
                )
            } else {
                "None".to_owned()
            };
            let _ = writeln!(
                code,
                "    Asset {{ name: {name:?}, bytes: include_bytes!({file:?}), gzipped: {gz} }},"
            );
        }
    } else {
        // Rebuild once the console appears.
        println!(
            "cargo:rerun-if-changed={}",
            dist.parent().expect("ui/").display()
        );
    }
    code.push_str("];\n");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
