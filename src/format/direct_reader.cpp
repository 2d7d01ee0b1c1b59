#include "format/direct_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "strata/error.h"

namespace strata {

DirectReader::DirectReader(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT);
  direct_ = fd_ >= 0;
  if (fd_ < 0 && errno == EINVAL) fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw Error(std::string("cannot open for reading: ") + std::strerror(errno), path.string());
}

DirectReader::~DirectReader() {
  if (fd_ >= 0) ::close(fd_);
}

void DirectReader::read(uint64_t offset, uint64_t size, uint8_t* dst) const {
  const uint64_t begin = offset - lead(offset);
  const uint64_t want_end = offset + size;
  const size_t total = span_bytes(offset, size);
  size_t done = 0;
  // The aligned span may run past the end of the file; only the bytes asked
  // for must arrive.
  while (begin + done < want_end) {
    const ssize_t got = ::pread(fd_, dst + done, total - done, static_cast<off_t>(begin + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      throw Error(std::string("read failed: ") + std::strerror(errno), path_.string(), "",
                  "the disk or the file went bad while streaming weights");
    done += static_cast<size_t>(got);
    // A read that stops short of the wanted bytes, or (with O_DIRECT) off a
    // block boundary, has met the end of the file.
    const bool ended = got == 0 || (direct_ && done % kAlign != 0);
    if (ended && begin + done < want_end)
      throw Error("the file ends at byte " + std::to_string(begin + done) + " but weights were expected up to byte " +
                      std::to_string(want_end),
                  path_.string(), "", "was it truncated or replaced after the model was loaded?");
  }
  if (!direct_) posix_fadvise(fd_, static_cast<off_t>(begin), static_cast<off_t>(total), POSIX_FADV_DONTNEED);
}

}  // namespace strata
