"""Reading and writing the host tools' files, with errors a person can act on.

    read_bytes(path, what)           the file's bytes; UserError (exit 2) if unreadable
    write_atomic(path, data, ...)    temporary file in the same directory, fsync,
                                     then rename, then fsync of the directory: a
                                     reader never sees half a file, and the rename
                                     survives a crash
"""
import os
import tempfile

from certpin_host.errors import UserError


def read_bytes(path, what="file"):
    """The bytes of ``path``; ``what`` names what it should be (for a directory)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UserError("%s: no such file" % path)
    except IsADirectoryError:
        raise UserError("%s: is a directory, not a %s" % (path, what))
    except OSError as e:
        raise UserError("%s: cannot read: %s" % (path, e.strerror or e))


def write_atomic(path, data, overwrite=True, mode=0o644):
    """Write bytes atomically. overwrite=False refuses an existing file (checked again at rename)."""
    if not overwrite and os.path.lexists(path):
        raise UserError("%s: already exists (use --force to overwrite, or `pinset add` to change it)" % path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".certpin-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UserError("%s: cannot write: %s" % (path, e.strerror or e))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
            _fsync_dir(directory)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile
                os.unlink(tmp)
            except FileExistsError:
                raise UserError("%s: already exists (use --force to overwrite)" % path)
            except OSError:  # no hard links here: check, then rename
                if os.path.lexists(path):
                    raise UserError("%s: already exists (use --force to overwrite)" % path)
                os.replace(tmp, path)
            _fsync_dir(directory)
    except OSError as e:
        raise UserError("%s: cannot write: %s" % (path, e.strerror or e))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fsync_dir(d):
    # The rename is in the directory: without this a crash can lose it.
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory
    finally:
        os.close(fd)
