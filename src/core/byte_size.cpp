#include "core/byte_size.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

#include "strata/error.h"

namespace strata {

uint64_t parse_byte_size(std::string_view text, bool allow_zero) {
  const auto bad = [&]() -> Error {
    return Error("bad size '" + std::string(text) + "'", "", "",
                 "expected a number with an optional unit, like 2GB, 500MB or 1GiB");
  };
  size_t split = 0;
  while (split < text.size() && ((text[split] >= '0' && text[split] <= '9') || text[split] == '.')) ++split;
  std::string unit(text.substr(split));
  while (!unit.empty() && unit.front() == ' ') unit.erase(unit.begin());
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + split, number);
  if (split == 0 || ec != std::errc() || end != text.data() + split) throw bad();
  static constexpr std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"b", 1},          {"kb", 1e3},        {"mb", 1e6},           {"gb", 1e9},
      {"tb", 1e12},    {"kib", 1024.0},   {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
  for (const auto& [name, factor] : kUnits) {
    if (unit != name) continue;
    const double bytes = std::floor(number * factor);
    // 1.8e19 is just under 2^64: anything larger does not fit the result.
    if (!(bytes >= (allow_zero ? 0 : 1)) || bytes >= 1.8e19) throw bad();
    return static_cast<uint64_t>(bytes);
  }
  throw bad();
}

std::string format_bytes(double bytes, ByteUnits units) {
  if (std::isinf(bytes)) return bytes > 0 ? "unlimited" : "-unlimited";
  const bool binary = units == ByteUnits::binary;
  const char* const binary_units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  const char* const decimal_units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  const double base = binary ? 1024 : 1000;
  const bool negative = bytes < 0;
  double value = std::fabs(bytes);
  int unit = 0;
  while (value >= base && unit < 5) {
    value /= base;
    ++unit;
  }
  char buffer[48];
  // Whole bytes have no fraction; otherwise binary keeps three significant
  // digits and decimal two decimals.
  const char* format = unit == 0 || (binary && value >= 99.95) ? "%s%.0f %s"
                       : !binary                                ? "%s%.2f %s"
                       : value >= 9.995                         ? "%s%.1f %s"
                                                                : "%s%.2f %s";
  std::snprintf(buffer, sizeof buffer, format, negative ? "-" : "", value,
                (binary ? binary_units : decimal_units)[unit]);
  return buffer;
}

std::string_view trim_space(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace strata
