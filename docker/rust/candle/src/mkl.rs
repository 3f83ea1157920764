//! Intel MKL's service functions, linked statically with the `mkl` feature (candle-core calls MKL's
//! `sgemm_` and vector-math functions itself).

use std::os::raw::{c_char, c_int};

/// mkl_types.h's `MKLVersion`.
#[repr(C)]
struct MklVersion {
    major: c_int,
    minor: c_int,
    update: c_int,
    patch: c_int,
    product_status: *const c_char,
    build: *const c_char,
    processor: *const c_char,
    platform: *const c_char,
}

extern "C" {
    fn MKL_Get_Version(version: *mut MklVersion);
    fn MKL_Set_Num_Threads(nth: c_int);
    fn MKL_Get_Max_Threads() -> c_int;
    fn MKL_Get_Version_String(buffer: *mut c_char, len: c_int);
}

/// Sizes MKL's OpenMP team (it would otherwise read OMP_NUM_THREADS or count the CPUs).
pub fn set_num_threads(n: usize) {
    // SAFETY: a plain setter of MKL's global thread count.
    unsafe { MKL_Set_Num_Threads(c_int::try_from(n).unwrap_or(c_int::MAX)) }
}

/// The most threads MKL will use for one call.
pub fn max_threads() -> usize {
    // SAFETY: a plain getter.
    usize::try_from(unsafe { MKL_Get_Max_Threads() }).unwrap_or(0)
}

/// MKL's own description: version, build and the instruction set it dispatches to on this CPU.
pub fn version() -> String {
    let mut buffer = [0 as c_char; 256];
    // SAFETY: MKL writes at most `len` bytes, NUL-terminated, into the buffer.
    unsafe { MKL_Get_Version_String(buffer.as_mut_ptr(), buffer.len() as c_int) };
    let bytes: Vec<u8> = buffer.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// The code path MKL dispatches to on this CPU, as MKL names it (e.g. "Intel(R) Advanced Vector
/// Extensions 512 (Intel(R) AVX-512) with support of Intel(R) Deep Learning Boost (Intel(R) DL Boost),
/// EVEX-encoded AES and Carry-Less Multiplication (CLMUL)").
pub fn processor() -> String {
    let mut v = MklVersion {
        major: 0,
        minor: 0,
        update: 0,
        patch: 0,
        product_status: std::ptr::null(),
        build: std::ptr::null(),
        processor: std::ptr::null(),
        platform: std::ptr::null(),
    };
    // SAFETY: MKL fills the struct; its strings are static, NUL-terminated, or left null.
    unsafe {
        MKL_Get_Version(&mut v);
        if v.processor.is_null() {
            return String::new();
        }
        std::ffi::CStr::from_ptr(v.processor).to_string_lossy().trim().to_string()
    }
}
