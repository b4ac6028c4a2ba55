; Inno Setup script for Cascade Studio (Windows). Build the bundle first (see packaging/README.md).
#define AppName "Cascade Studio"
#define AppVersion "0.1.0"
#define Bundle "..\..\dist\cascade-studio"

[Setup]
AppId={{5B2C8E7A-3D41-4C8B-9F0E-CA5CADE57D10}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Cascade Studio
DefaultDirName={autopf}\Cascade Studio
DefaultGroupName=Cascade Studio
OutputDir=..\..\dist
OutputBaseFilename=CascadeStudio-{#AppVersion}-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesInstallIn64BitMode=x64compatible
WizardStyle=modern
LicenseFile=..\..\resources\THIRD_PARTY_NOTICES.md
UninstallDisplayIcon={app}\cascade-studio.exe

[Files]
Source: "{#Bundle}\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion

[Tasks]
Name: "desktopicon"; Description: "Create a &desktop shortcut"; GroupDescription: "Shortcuts:"; Flags: unchecked

[Icons]
Name: "{group}\Cascade Studio"; Filename: "{app}\cascade-studio.exe"
Name: "{group}\Cascade Studio demo (no API key)"; Filename: "{app}\cascade-studio.exe"; Parameters: "demo"
Name: "{group}\Uninstall Cascade Studio"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Cascade Studio"; Filename: "{app}\cascade-studio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\cascade-studio.exe"; Parameters: "--self-check"; Flags: runhidden waituntilterminated; StatusMsg: "Checking the installation..."
Filename: "{app}\cascade-studio.exe"; Parameters: "demo"; Description: "Open the demo"; Flags: nowait postinstall skipifsilent
