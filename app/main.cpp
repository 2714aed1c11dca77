// Orrery's single executable: the CLI when given a subcommand (run, synth, info, --headless),
// the GUI otherwise (on the built-in demo dataset, or on the store named on the command line).
#include <QApplication>
#include <QMessageBox>
#include <QVulkanInstance>

#include "cli.hpp"
#include "demo.hpp"
#include "io/hdf5_guard.hpp"
#include "main_window.hpp"

int main(int argc, char** argv) {
  // HDF5 files are first read in a child process (this executable again); see hdf5_guard.hpp.
  if (auto status = orrery::io::hdf5_guard_main(argc, argv)) return *status;
  if (orrery::app::is_cli_invocation(argc, argv)) return orrery::app::run_cli(argc, argv);

  QApplication app(argc, argv);
  QApplication::setApplicationName("Orrery");
  QApplication::setOrganizationName("Orrery");
  QVulkanInstance vulkan;
  vulkan.setApiVersion(QVersionNumber(1, 1));
  if (!vulkan.create()) {
    QMessageBox::critical(nullptr, "Orrery",
                          QString("Vulkan is not available (error %1). Install a Vulkan driver, "
                                  "e.g. mesa-vulkan-drivers.")
                              .arg(vulkan.errorCode()));
    return 2;
  }
  orrery::app::MainWindow window(&vulkan);
  window.show();
  QString path;
  const QStringList args = QApplication::arguments();
  if (args.size() > 1) {
    path = args.at(1);
  } else {
    try {
      path = QString::fromStdString(orrery::app::ensure_demo_store());
    } catch (const std::exception& e) {
      QMessageBox::critical(&window, "Orrery",
                            QString("Cannot create the demo dataset: ") + e.what());
    }
  }
  if (!path.isEmpty()) window.openStore(path);
  return app.exec();
}
