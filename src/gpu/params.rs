//! Typed kernel parameters: each kernel's uniform is a `#[repr(C)]` `Pod` struct declared with
//! `kernel_params!`, a field-for-field mirror of the WGSL struct of the same name that its shader
//! binds at `@group(0) @binding(0)`. The test `kernels::tests::params_match_the_wgsl_structs` compares
//! every field's name, offset and type and the struct's size with what naga reports for the shader,
//! so the two sides cannot drift apart.

/// One field of a params struct as the Rust side lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamField {
    pub name: &'static str,
    /// Byte offset (`std::mem::offset_of!`).
    pub offset: usize,
    /// The WGSL scalar type: `u32`, `i32` or `f32`.
    pub ty: &'static str,
}

/// The layout of a kernel's params struct: what a `Kernel` is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamsLayout {
    /// The name of the struct in Rust and in WGSL.
    pub wgsl_struct: &'static str,
    pub size: usize,
    pub fields: &'static [ParamField],
}

/// A kernel's uniform. Implemented by `kernel_params!`, never by hand.
pub trait KernelParams: bytemuck::Pod {
    /// The WGSL struct this mirrors (the same name as the Rust struct).
    const WGSL_STRUCT: &'static str;
    const FIELDS: &'static [ParamField];
    const LAYOUT: ParamsLayout = ParamsLayout { wgsl_struct: Self::WGSL_STRUCT, size: std::mem::size_of::<Self>(), fields: Self::FIELDS };
}

/// Declares a params struct (`#[repr(C)]`, `Pod`, public fields of 4-byte scalars) and its
/// `KernelParams`; the WGSL struct of the same name must list the same fields in the same order.
macro_rules! kernel_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ident,)+ }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)+
        }

        impl $crate::gpu::KernelParams for $name {
            const WGSL_STRUCT: &'static str = stringify!($name);
            const FIELDS: &'static [$crate::gpu::ParamField] = &[$($crate::gpu::ParamField {
                name: stringify!($field),
                offset: std::mem::offset_of!($name, $field),
                ty: stringify!($ty),
            },)+];
        }
    };
}
pub(crate) use kernel_params;

/// The WGSL source of a kernel: `kernels/common.wgsl`, then the named files of `src/kernels/` (paths within it) in order.
/// `wgsl!(enable f16; ...)` puts the directive first, where WGSL wants it.
macro_rules! wgsl {
    (enable $ext:ident; $($file:literal),+ $(,)?) => {
        concat!("enable ", stringify!($ext), ";\n", $crate::gpu::wgsl!($($file),+))
    };
    ($($file:literal),+ $(,)?) => {
        concat!(
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/kernels/common.wgsl")),
            $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/src/kernels/", $file))),+
        )
    };
}
pub(crate) use wgsl;
