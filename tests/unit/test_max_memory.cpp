// Byte sizes, device names and --max-memory budgets as the command line reads them.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/byte_size.h"
#include "plan/max_memory.h"
#include "strata/error.h"

namespace strata::plan {
namespace {

constexpr double kGiB = 1073741824.0;

// The message of the strata::Error `f` throws, or "" when it throws none.
template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ByteSize, PowersOfTwoAndTenCaseInsensitive) {
  EXPECT_EQ(parse_byte_size("8GiB"), 8ull << 30);
  EXPECT_EQ(parse_byte_size("8gib"), 8ull << 30);
  EXPECT_EQ(parse_byte_size("1TiB"), 1ull << 40);
  EXPECT_EQ(parse_byte_size("3MiB"), 3ull << 20);
  EXPECT_EQ(parse_byte_size("2KiB"), 2048u);
  EXPECT_EQ(parse_byte_size("1GB"), 1'000'000'000u);
  EXPECT_EQ(parse_byte_size("2tb"), 2'000'000'000'000u);
  EXPECT_EQ(parse_byte_size("512"), 512u);
  EXPECT_EQ(parse_byte_size("512B"), 512u);
  EXPECT_THROW(parse_byte_size("0"), Error);
  EXPECT_EQ(parse_byte_size("0", /*allow_zero=*/true), 0u);
  EXPECT_EQ(parse_byte_size("0GiB", true), 0u);
  for (const char* bad : {"", "GiB", "8 GiBs", "8XiB", "-1", "1e9", "1.2.3"}) EXPECT_THROW(parse_byte_size(bad, true), Error) << bad;
}

TEST(ByteSize, FormatsWithThreeSignificantDigits) {
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(64.0 * 1048576), "64.0 MiB");
  EXPECT_EQ(format_bytes(1.5 * kGiB), "1.50 GiB");
  EXPECT_EQ(format_bytes(123 * kGiB), "123 GiB");
  EXPECT_EQ(format_bytes(2.0 * 1024 * kGiB), "2.00 TiB");
  EXPECT_EQ(format_bytes(INFINITY), "unlimited");
}

TEST(Devices, StrataSpellingsAreOrdinals) {
  EXPECT_EQ(parse_device("0"), Device::gpu_(0));
  EXPECT_EQ(parse_device("cuda:1"), Device::gpu_(1));
  EXPECT_EQ(parse_device("sim:3"), Device::gpu_(3));
  EXPECT_EQ(parse_device("cpu"), Device::cpu_());
  EXPECT_EQ(parse_device("disk"), Device::disk_());
  for (const char* bad : {"cuda:", "sim:x", "cuda0", "gpu:0", "sim:-1", "", "CPU"}) EXPECT_THROW(parse_device(bad), Error) << bad;
  EXPECT_EQ(device_label(Device::gpu_(2), ""), "2");
  EXPECT_EQ(device_label(Device::gpu_(0), "sim"), "sim:0");
  EXPECT_EQ(device_label(Device::gpu_(1), "cuda"), "cuda:1");
  EXPECT_EQ(device_label(Device::cpu_(), "cuda"), "cpu");
  EXPECT_EQ(device_label(Device::disk_(), "sim"), "disk");
}

TEST(MaxMemory, ParsesAndSortsIntoDeviceOrder) {
  const MaxMemory mm = parse_max_memory(" disk , cpu=30GiB, 1 = 8GiB ,0=8GB");
  ASSERT_EQ(mm.size(), 4u);
  EXPECT_EQ(mm[0], (std::pair{Device::gpu_(0), 8e9}));
  EXPECT_EQ(mm[1], (std::pair{Device::gpu_(1), 8 * kGiB}));
  EXPECT_EQ(mm[2], (std::pair{Device::cpu_(), 30 * kGiB}));
  EXPECT_EQ(mm[3].first, Device::disk_());
  EXPECT_TRUE(std::isinf(mm[3].second));
}

TEST(MaxMemory, AcceleratorSpellingsAndDiskSize) {
  const MaxMemory mm = parse_max_memory("sim:1=1MiB,cuda:0=2MiB,disk=100GB,cpu=0");
  ASSERT_EQ(mm.size(), 4u);
  EXPECT_EQ(mm[0], (std::pair{Device::gpu_(0), 2.0 * 1048576}));
  EXPECT_EQ(mm[1], (std::pair{Device::gpu_(1), 1.0 * 1048576}));
  EXPECT_EQ(mm[2], (std::pair{Device::cpu_(), 0.0}));
  EXPECT_TRUE(std::isinf(mm[3].second)) << "disk is unlimited whatever size is written";
}

TEST(MaxMemory, ClearErrors) {
  EXPECT_NE(error_of([] { parse_max_memory(""); }).find("empty item"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("0=1GiB,,cpu=2GiB"); }).find("empty item"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("0=1GiB,"); }).find("empty item"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("cpu"); }).find("no size for cpu"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("0="); }).find("no size for 0"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("0=8QiB"); }).find("bad size '8QiB'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("gpu0=8GiB"); }).find("unknown device 'gpu0'"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("cpu=1GiB,cpu=2GiB"); }).find("twice"), std::string::npos);
  const std::string twice = error_of([] { parse_max_memory("0=1GiB,cuda:0=2GiB"); });
  EXPECT_NE(twice.find("twice"), std::string::npos) << twice;
  EXPECT_NE(twice.find("(as 0)"), std::string::npos) << twice;
  EXPECT_NE(error_of([] { parse_max_memory("disk,disk"); }).find("twice"), std::string::npos);
  EXPECT_NE(error_of([] { parse_max_memory("disk=lots"); }).find("bad size"), std::string::npos);
}

TEST(MaxMemory, MainAcceleratorAndBudgets) {
  const MaxMemory mm = parse_max_memory("0=0,1=4GiB,2=4GiB,cpu=1GiB");
  EXPECT_EQ(main_accelerator_of(mm), Device::gpu_(1)) << "an accelerator without budget executes nothing";
  EXPECT_FALSE(main_accelerator_of(parse_max_memory("cpu=1GiB,disk")).has_value());
  EXPECT_EQ(budget_of(mm, Device::gpu_(2)), 4 * kGiB);
  EXPECT_EQ(budget_of(mm, Device::gpu_(7)), 0.0);
  EXPECT_TRUE(std::isinf(budget_of(mm, Device::disk_())));
}

}  // namespace
}  // namespace strata::plan
