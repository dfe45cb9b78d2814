//! Copying and removing instance trees as the host's root, safely although an instance's root
//! controls their contents: every step works on directory descriptors (`openat` and friends),
//! never follows a symlink (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), never enters another file system
//! (a directory whose `st_dev` differs is copied empty and left alone on removal), and copies
//! device nodes not at all. Owners are shifted on the way between the instance's host id range
//! (disks) and plain ids (images, snapshots).
//!
//! Between snapshots and images (owners kept) regular files are hard links of the source's rather
//! than copies: snapshot and image trees are never written after they are made (instances get
//! copies with shifted owners), so sharing their inodes is invisible, and it saves copying every
//! file of every image a build makes.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, Timestamps};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How owners change during a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shift {
    /// Keep ids (image to image, snapshot to image).
    Keep,
    /// Plain ids to the instance range starting at this host id (image to disk).
    Into(u32),
    /// The instance range starting at this host id back to plain ids (disk to snapshot); ids
    /// outside the range become `nobody` (65534).
    OutOf(u32),
}

impl Shift {
    fn apply(self, id: u32) -> u32 {
        const NOBODY: u32 = 65_534;
        const RANGE: u32 = super::launcher::ID_RANGE;
        match self {
            Shift::Keep => id,
            Shift::Into(base) if id < RANGE => base + id,
            Shift::Into(base) => base + NOBODY,
            Shift::OutOf(base) if (base..base + RANGE).contains(&id) => id - base,
            Shift::OutOf(_) => NOBODY,
        }
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// One copy in progress.
struct Copy {
    dev: u64,
    shift: Shift,
    /// Files with several links, by source inode: their path relative to the destination root.
    links: HashMap<u64, PathBuf>,
    dest_root: OwnedFd,
}

/// Copies the tree `from` to the new directory `to` (which must not exist).
pub(crate) fn copy(from: &Path, to: &Path, shift: Shift) -> io::Result<()> {
    let source = rustix::fs::open(from, DIR_FLAGS, Mode::empty())?;
    let stat = rustix::fs::fstat(&source)?;
    rustix::fs::mkdir(to, Mode::from_raw_mode(0o700))?;
    let dest = rustix::fs::open(to, DIR_FLAGS, Mode::empty())?;
    let mut copy = Copy {
        dev: stat.st_dev,
        shift,
        links: HashMap::new(),
        dest_root: rustix::fs::open(to, DIR_FLAGS, Mode::empty())?,
    };
    copy.dir(&source, &dest, Path::new(""))?;
    copy.metadata_of_fd(&dest, &stat)
}

impl Copy {
    fn dir(&mut self, source: &OwnedFd, dest: &OwnedFd, relative: &Path) -> io::Result<()> {
        for entry in Dir::read_from(source)? {
            let entry = entry?;
            let name = entry.file_name().to_owned();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let stat = rustix::fs::statat(source, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            let path = relative.join(std::ffi::OsStr::from_bytes(bytes));
            self.entry(source, dest, &name, &stat, &path)?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        source: &OwnedFd,
        dest: &OwnedFd,
        name: &std::ffi::CStr,
        stat: &Stat,
        path: &Path,
    ) -> io::Result<()> {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::Directory => {
                rustix::fs::mkdirat(dest, name, Mode::from_raw_mode(0o700))?;
                let dest_dir = rustix::fs::openat(dest, name, DIR_FLAGS, Mode::empty())?;
                if stat.st_dev == self.dev {
                    let source_dir = rustix::fs::openat(source, name, DIR_FLAGS, Mode::empty())?;
                    self.dir(&source_dir, &dest_dir, path)?;
                }
                self.metadata_of_fd(&dest_dir, stat)
            }
            FileType::RegularFile => self.file(source, dest, name, stat, path),
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(source, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dest, name)?;
                self.metadata_at(dest, name, stat)
            }
            FileType::Fifo => {
                rustix::fs::mknodat(dest, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)?;
                self.metadata_at(dest, name, stat)
            }
            // Device nodes and sockets: an instance cannot create usable ones; never copied.
            _ => Ok(()),
        }
    }

    fn file(
        &mut self,
        source: &OwnedFd,
        dest: &OwnedFd,
        name: &std::ffi::CStr,
        stat: &Stat,
        path: &Path,
    ) -> io::Result<()> {
        if self.shift == Shift::Keep {
            match rustix::fs::linkat(source, name, dest, name, AtFlags::empty()) {
                Err(rustix::io::Errno::XDEV) => {} // another file system: copy
                linked => return linked.map_err(Into::into),
            }
        }
        if stat.st_nlink > 1 {
            if let Some(first) = self.links.get(&stat.st_ino) {
                return rustix::fs::linkat(
                    &self.dest_root,
                    first.as_path(),
                    dest,
                    name,
                    AtFlags::empty(),
                )
                .map_err(Into::into);
            }
            self.links.insert(stat.st_ino, path.to_path_buf());
        }
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let input = rustix::fs::openat(source, name, flags, Mode::empty())?;
        let opened = rustix::fs::fstat(&input)?;
        if opened.st_ino != stat.st_ino
            || FileType::from_raw_mode(opened.st_mode) != FileType::RegularFile
        {
            return Ok(()); // replaced while we looked: skip rather than copy something else
        }
        let out_flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let output = rustix::fs::openat(dest, name, out_flags, Mode::from_raw_mode(0o600))?;
        let (mut input, mut output) = (File::from(input), File::from(output));
        io::copy(&mut input, &mut output)?;
        self.metadata_of_fd(&OwnedFd::from(output), stat)
    }

    /// Owner (shifted), then mode (after chown, which clears set-id bits), then times.
    fn metadata_of_fd(&self, fd: &OwnedFd, stat: &Stat) -> io::Result<()> {
        let (uid, gid) = self.owner(stat);
        rustix::fs::fchown(fd, Some(uid), Some(gid))?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(stat.st_mode & 0o7777))?;
        rustix::fs::futimens(fd, &times(stat)).map_err(Into::into)
    }

    /// Like [`Self::metadata_of_fd`] for entries that cannot be opened (symlinks, FIFOs).
    fn metadata_at(&self, dir: &OwnedFd, name: &std::ffi::CStr, stat: &Stat) -> io::Result<()> {
        let (uid, gid) = self.owner(stat);
        rustix::fs::chownat(dir, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Symlink {
            rustix::fs::chmodat(
                dir,
                name,
                Mode::from_raw_mode(stat.st_mode & 0o7777),
                AtFlags::empty(),
            )?;
        }
        rustix::fs::utimensat(dir, name, &times(stat), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(Into::into)
    }

    fn owner(&self, stat: &Stat) -> (rustix::fs::Uid, rustix::fs::Gid) {
        (
            rustix::fs::Uid::from_raw(self.shift.apply(stat.st_uid)),
            rustix::fs::Gid::from_raw(self.shift.apply(stat.st_gid)),
        )
    }
}

fn times(stat: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: stat.st_atime,
            tv_nsec: stat.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: stat.st_mtime,
            tv_nsec: stat.st_mtime_nsec as _,
        },
    }
}

/// Removes the directory `dir` and everything below it on the same file system, without
/// following symlinks. Returns whether everything went; what lies on another file system (a
/// mount point) is left in place.
pub(crate) fn remove(dir: &Path) -> io::Result<bool> {
    let fd = match rustix::fs::open(dir, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(true),
        Err(error) => return Err(error.into()),
    };
    let dev = rustix::fs::fstat(&fd)?.st_dev;
    let complete = remove_contents(&fd, dev)?;
    drop(fd);
    if complete {
        std::fs::remove_dir(dir)?;
    }
    Ok(complete)
}

fn remove_contents(dir: &OwnedFd, dev: u64) -> io::Result<bool> {
    let mut complete = true;
    // Make the directory writable for us in case the instance took the write bit away.
    let _ = rustix::fs::fchmod(dir, Mode::from_raw_mode(0o700));
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_owned();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let stat = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
            rustix::fs::unlinkat(dir, &name, AtFlags::empty())?;
            continue;
        }
        if stat.st_dev != dev {
            complete = false;
            continue;
        }
        let child = rustix::fs::openat(dir, &name, DIR_FLAGS, Mode::empty())?;
        if remove_contents(&child, dev)? {
            rustix::fs::unlinkat(dir, &name, AtFlags::REMOVEDIR)?;
        } else {
            complete = false;
        }
    }
    Ok(complete)
}
