//! Links Intel MKL (static, LP64, Intel OpenMP threading) from `$MKLROOT`; see build.rs.
#![no_std]
