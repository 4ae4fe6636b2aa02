; Inno Setup 6 script for the Windows installer of Thyroid Review.
; On Windows, from the repository root:
;   make dist                      (or: .venv\Scripts\pyinstaller --noconfirm --clean build.spec)
;   iscc packaging\windows\ThyroidReview.iss
; Output: dist\ThyroidReview-<version>-setup.exe (per-user install, no admin rights needed).

#define AppName "Thyroid Review"
#define AppVersion "0.1.0"
#define AppExe "ThyroidReview.exe"

[Setup]
AppId={{5B0E6C1E-6C55-4C1B-9E55-7E3B1D2A9A11}
AppName={#AppName}
AppVersion={#AppVersion}
AppPublisher=Thyroid Review project
DefaultDirName={autopf}\ThyroidReview
DefaultGroupName={#AppName}
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=ThyroidReview-{#AppVersion}-setup
SetupIconFile=..\..\resources\icons\thyroid-review.ico
UninstallDisplayIcon={app}\{#AppExe}
Compression=lzma2/max
SolidCompression=yes
DiskSpanning=no
WizardStyle=modern
LicenseFile=license.txt

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"

[Files]
Source: "..\..\dist\ThyroidReview\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#AppExe}"
Name: "{group}\{#AppName} self-test"; Filename: "{app}\{#AppExe}"; Parameters: "--selftest"
Name: "{group}\{cm:UninstallProgram,{#AppName}}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Tasks: desktopicon

[Run]
; The self-test writes its one-line result to %TEMP%\ThyroidReview-selftest.txt (no console).
Filename: "{app}\{#AppExe}"; Parameters: "--selftest"; StatusMsg: "Checking the installation..."; Flags: waituntilterminated runhidden
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent
