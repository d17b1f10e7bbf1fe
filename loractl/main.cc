// loractl: the command-line client of lorad. Wires the process's streams,
// environment and terminal into the command library (loractl/commands.h).
#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "loractl/commands.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  lora::loractl::CliIo io;
  io.out = &std::cout;
  io.err = &std::cerr;
  io.env = lora::loractl::ProcessEnv();
  io.out_is_terminal = ::isatty(STDOUT_FILENO) == 1;
  if (io.out_is_terminal) {
    winsize size{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0) {
      io.terminal_width = size.ws_col;
    }
  }
  const std::vector<std::string> args(argv + 1, argv + argc);
  std::vector<lora::loractl::Command> commands =
      lora::loractl::BuiltinCommands();
  commands.push_back(lora::loractl::DemoCommand());
  const int code = lora::loractl::RunLoractl(args, commands, io);
  std::cout.flush();
  std::cerr.flush();
  return code;
}
