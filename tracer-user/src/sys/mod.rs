//! System readers: everything that reads `/proc`, `/sys`, tracefs, BTF,
//! cgroups and clocks. The model never does; these fill it.
pub mod btf;
pub mod cgroup;
pub mod clock;
pub mod cpu_limit;
pub mod disks;
pub mod markers;
pub mod procfs;
pub mod space;
pub mod tracefs;
