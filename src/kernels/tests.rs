//! Checks over every kernel: typed params against naga, the shared snippet, validation.

use super::{KERNELS, WORKGROUP_SIZE};

fn parse(name: &str, source: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)))
}

/// The WGSL name of a 4-byte scalar type, as `kernel_params!` records the Rust one.
fn scalar_name(inner: &naga::TypeInner) -> String {
    match inner {
        naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Uint, width: 4 }) => "u32".into(),
        naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Sint, width: 4 }) => "i32".into(),
        naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Float, width: 4 }) => "f32".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn params_match_the_wgsl_structs() {
    for k in KERNELS {
        let module = parse(k.name, k.source);
        let (_, uniform) = module
            .global_variables
            .iter()
            .find(|(_, v)| v.binding == Some(naga::ResourceBinding { group: 0, binding: 0 }))
            .unwrap_or_else(|| panic!("{}: nothing at @group(0) @binding(0)", k.name));
        assert_eq!(uniform.space, naga::AddressSpace::Uniform, "{}: binding 0 is not the uniform", k.name);
        let ty = &module.types[uniform.ty];
        assert_eq!(ty.name.as_deref(), Some(k.params.wgsl_struct), "{}: the uniform's struct", k.name);
        let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{}: the uniform is no struct", k.name) };
        let wgsl: Vec<(String, usize, String)> = members
            .iter()
            .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize, scalar_name(&module.types[m.ty].inner)))
            .collect();
        let rust: Vec<(String, usize, String)> = k.params.fields.iter().map(|f| (f.name.into(), f.offset, f.ty.into())).collect();
        assert_eq!(wgsl, rust, "{}: fields (name, offset, type) of {} in WGSL and in Rust", k.name, k.params.wgsl_struct);
        assert_eq!(*span as usize, k.params.size, "{}: size of {}", k.name, k.params.wgsl_struct);
    }
}

#[test]
fn common_wgsl_has_the_host_workgroup_size() {
    let common = include_str!("common.wgsl");
    let module = parse("common.wgsl", common);
    let (_, wg) = module.constants.iter().find(|(_, c)| c.name.as_deref() == Some("WG_SIZE")).expect("common.wgsl defines WG_SIZE");
    let value = match module.global_expressions[wg.init] {
        naga::Expression::Literal(naga::Literal::U32(v)) => v,
        ref e => panic!("WG_SIZE is {e:?}, not a u32 literal"),
    };
    assert_eq!(value, WORKGROUP_SIZE, "WG_SIZE in common.wgsl and kernels::WORKGROUP_SIZE");
    // Every kernel starts with the snippet, and all but the tiled GEMM, the router softmaxes and the
    // split-K GEMMs (whose grids do not count in WORKGROUP_SIZE) run WORKGROUP_SIZE invocations.
    for k in KERNELS {
        assert!(k.source.trim_start_matches("enable f16;\n").starts_with(common), "{} does not start with common.wgsl", k.name);
        let module = parse(k.name, k.source);
        let size = module.entry_points.iter().find(|e| e.name == "main").map(|e| e.workgroup_size);
        let expected = match k.name {
            "gemm_tiled" | "gemm_tiled_vec4" | "gemm_tiled_vec4_f16" => [16, 16, 1],
            "router_softmax_subgroup" | "router_softmax_shared" | "router_logits_subgroup" | "router_logits_shared" => [256, 1, 1],
            name if name.starts_with("gemm_splitk") => [crate::kernels::gemm::SPLITK_WORKGROUP as u32, 1, 1],
            _ => [WORKGROUP_SIZE, 1, 1],
        };
        assert_eq!(size, Some(expected), "{}: workgroup size", k.name);
    }
}

#[test]
fn every_wgsl_file_parses_and_validates() {
    for k in KERNELS {
        let module = naga::front::wgsl::parse_str(k.source).unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(k.source)));
        let caps = if k.source.starts_with("enable f16;") {
            naga::valid::Capabilities::SHADER_FLOAT16
        } else if k.source.contains("subgroupAdd") {
            naga::valid::Capabilities::SUBGROUP
        } else {
            naga::valid::Capabilities::empty()
        };
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {:?}", k.name, e));
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{} has no `main`", k.name);
    }
}

#[test]
fn every_shader_file_is_part_of_a_registered_kernel() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/kernels");
    let folders = std::fs::read_dir(root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir());
    let files = folders.flat_map(|dir| std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>());
    let mut seen = 0;
    for path in files {
        if path.extension().is_some_and(|e| e == "wgsl") {
            seen += 1;
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                KERNELS.iter().any(|k| k.source.contains(&text)),
                "{} is in no kernel of KERNELS, so it is never validated",
                path.display()
            );
        }
    }
    // 23 files in the kernel folders, as a guard that the walk finds them at all.
    assert!(seen >= 23, "found only {seen} WGSL files under {root}");
}
