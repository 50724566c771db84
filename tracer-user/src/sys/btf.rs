//! Just enough of a BTF reader to find struct member offsets in the running
//! kernel's type information (`/sys/kernel/btf/vmlinux`), so the kernel
//! programs never depend on the build machine's struct layouts.
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("BTF data is truncated or malformed ({0})")]
    Malformed(&'static str),
    #[error("the kernel's BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("the kernel's BTF has no member `{member}` in struct `{strukt}`")]
    NoMember { strukt: String, member: String },
    #[error("the kernel's structs are laid out differently than expected: {0}")]
    Layout(&'static str),
}

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

enum Type {
    Composite { name_off: u32, members: Vec<Member> },
    /// Typedefs and qualifiers that point at another type.
    Alias(u32),
    Other,
}

pub struct Btf {
    strings: Vec<u8>,
    /// Index = type id; id 0 is `void`.
    types: Vec<Type>,
    structs_by_name: HashMap<String, u32>,
}

fn u16_at(data: &[u8], at: usize) -> Result<u16, BtfError> {
    data.get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or(BtfError::Malformed("short read"))
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("short read"))
}

impl Btf {
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        if u16_at(data, 0)? != BTF_MAGIC {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let types_data = data
            .get(hdr_len + type_off..hdr_len + type_off + type_len)
            .ok_or(BtfError::Malformed("type section"))?;
        let strings = data
            .get(hdr_len + str_off..hdr_len + str_off + str_len)
            .ok_or(BtfError::Malformed("string section"))?
            .to_vec();

        let mut types = vec![Type::Other];
        let mut at = 0;
        while at < types_data.len() {
            let name_off = u32_at(types_data, at)?;
            let info = u32_at(types_data, at + 4)?;
            let size_or_type = u32_at(types_data, at + 8)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            at += 12;
            let (extra, ty) = match kind {
                1 => (4, Type::Other),                         // INT
                2 | 8..=11 | 18 => (0, Type::Alias(size_or_type)), // PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
                3 => (12, Type::Other),                        // ARRAY
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(types_data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(types_data, m)?,
                            type_id: u32_at(types_data, m + 4)?,
                            bit_offset: if kind_flag { offset & 0x00ff_ffff } else { offset },
                        });
                    }
                    (vlen * 12, Type::Composite { name_off, members })
                }
                6 => (vlen * 8, Type::Other),                  // ENUM
                7 | 12 | 16 => (0, Type::Other),               // FWD, FUNC, FLOAT
                13 => (vlen * 8, Type::Other),                 // FUNC_PROTO
                14 => (4, Type::Other),                        // VAR
                15 => (vlen * 12, Type::Other),                // DATASEC
                17 => (4, Type::Other),                        // DECL_TAG
                19 => (vlen * 12, Type::Other),                // ENUM64
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            at += extra;
            types.push(ty);
        }

        let mut btf = Btf {
            strings,
            types,
            structs_by_name: HashMap::new(),
        };
        for (id, ty) in btf.types.iter().enumerate() {
            if let Type::Composite { name_off, members } = ty
                && *name_off != 0
                && !members.is_empty()
            {
                let name = btf.string(*name_off).to_owned();
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    pub fn from_sys_fs() -> std::io::Result<Vec<u8>> {
        std::fs::read("/sys/kernel/btf/vmlinux")
    }

    fn string(&self, off: u32) -> &str {
        let tail = self.strings.get(off as usize..).unwrap_or_default();
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        std::str::from_utf8(&tail[..end]).unwrap_or("")
    }

    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(Type::Alias(target)) => id = *target,
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `member` in `struct strukt`, looking through anonymous
    /// structs and unions the way C field access does.
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        self.member_bit_offset(strukt, member).map(|bits| bits / 8)
    }

    /// Bit offset of `member` (for bitfields such as `task_struct.in_iowait`).
    pub fn member_bit_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        self.find_member(id, member)
            .ok_or_else(|| BtfError::NoMember {
                strukt: strukt.to_owned(),
                member: member.to_owned(),
            })
    }

    fn find_member(&self, id: u32, member: &str) -> Option<u32> {
        let Some(Type::Composite { members, .. }) = self.types.get(id as usize) else {
            return None;
        };
        for m in members {
            if m.name_off == 0 {
                let inner = self.resolve(m.type_id);
                if let Some(bits) = self.find_member(inner, member) {
                    return Some(m.bit_offset + bits);
                }
            } else if self.string(m.name_off) == member {
                return Some(m.bit_offset);
            }
        }
        None
    }

    pub fn has_member(&self, strukt: &str, member: &str) -> bool {
        self.member_offset(strukt, member).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `struct outer { int a; union { int b; int c; }; }`
    /// with `c` at bit offset 64 inside the union placed at byte 8, and
    /// `struct flags { unsigned x:1 (bit 67) }` using bitfield encoding.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0c\0b\0flags\0x\0".to_vec();
        let s = |name: &str| -> u32 {
            let needle = format!("\0{name}\0");
            strings.windows(needle.len()).position(|w| w == needle.as_bytes()).unwrap() as u32 + 1
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| types.extend_from_slice(&w.to_le_bytes()));
        // [1] int
        push(&[s("int"), 1 << 24, 4, 32]);
        // [2] anonymous union { int b; int c; }
        push(&[0, (5 << 24) | 2, 4, s("b"), 1, 0, s("c"), 1, 0]);
        // [3] struct outer { int a; <union> at bit 64 }
        push(&[s("outer"), (4 << 24) | 2, 16, s("a"), 1, 0, 0, 2, 64]);
        // [4] struct flags, kind_flag set: offset = bitfield size << 24 | bit offset
        push(&[s("flags"), (1 << 31) | (4 << 24) | 1, 16, s("x"), 1, (1 << 24) | 67]);
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.member_offset("outer", "c").unwrap(), 8);
        assert!(matches!(btf.member_offset("outer", "zz"), Err(BtfError::NoMember { .. })));
        assert!(matches!(btf.member_offset("nope", "a"), Err(BtfError::NoStruct(_))));
        assert_eq!(btf.member_bit_offset("flags", "x").unwrap(), 67);
        assert_eq!(btf.member_offset("flags", "x").unwrap(), 8);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, clearly").is_err());
    }

    #[test]
    fn reads_the_running_kernel_when_available() {
        let Ok(data) = Btf::from_sys_fs() else { return };
        let btf = Btf::parse(&data).unwrap();
        let pid = btf.member_offset("task_struct", "pid").unwrap();
        let tgid = btf.member_offset("task_struct", "tgid").unwrap();
        assert_eq!(tgid, pid + 4, "pid_t pid; pid_t tgid; are adjacent in task_struct");
        // A one-bit bitfield, found with its bit (not byte) offset.
        let iowait = btf.member_bit_offset("task_struct", "in_iowait").unwrap();
        assert!(iowait > 0);
    }
}
