//! Embeds every file under `profiles/` so the binary carries its default clinical
//! knowledge; a hospital can still replace any of them at run time (`--knowledge DIR`).

use std::{env, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    files.sort();
    let mut out = String::from("/// Files under `profiles/`, by path relative to it.\npub static EMBEDDED: &[(&str, &str)] = &[\n");
    for rel in &files {
        let abs = root.join(rel);
        println!("cargo:rerun-if-changed={}", abs.display());
        out.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("embedded_profiles.rs");
    fs::write(dest, out).expect("write embedded_profiles.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).expect("read profiles/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "toml" | "csv")
        ) {
            let rel = path.strip_prefix(root).expect("under root");
            files.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}
