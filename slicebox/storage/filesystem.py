"""Images as files ``<root>/<image id>`` on a local or mounted file system."""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import BinaryIO

from slicebox.errors import NotFound, StorageUnavailable
from slicebox.storage.owner import owner_prefix


class FileSystemStorage:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        self._tmp = os.path.join(self.root, "tmp")
        os.makedirs(self._tmp, exist_ok=True)

    def _path(self, image_id: int) -> str:
        return os.path.join(self.root, str(int(image_id)))

    def temp_dir(self) -> str:
        return self._tmp

    def put_file(self, image_id: int, path: str) -> None:
        target = self._path(image_id)
        try:
            os.replace(path, target)  # same file system: atomic
        except OSError:
            fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=owner_prefix())
            os.close(fd)
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
            os.unlink(path)

    def write(self, image_id: int, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=owner_prefix())
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, self._path(image_id))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def open(self, image_id: int) -> BinaryIO:
        try:
            return open(self._path(image_id), "rb")
        except FileNotFoundError:
            raise NotFound(f"dataset for image {image_id} not found") from None

    def path(self, image_id: int) -> str | None:
        return self._path(image_id)

    def size(self, image_id: int) -> int:
        try:
            return os.path.getsize(self._path(image_id))
        except FileNotFoundError:
            raise NotFound(f"dataset for image {image_id} not found") from None

    def exists(self, image_id: int) -> bool:
        return os.path.exists(self._path(image_id))

    def delete(self, image_id: int) -> None:
        try:
            os.unlink(self._path(image_id))
        except FileNotFoundError:
            pass

    def check(self) -> None:
        """The folder exists and a file can be created in its temp folder."""
        try:
            fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="health-")
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise StorageUnavailable(f"storage folder {self.root}: {exc.strerror or exc}") from None

    def ids(self) -> list[int]:
        return [int(n) for n in os.listdir(self.root) if n.isdigit()]
