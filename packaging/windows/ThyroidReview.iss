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
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
// After copying the files, run the self-test; on failure show its one-line reason, which
// it writes to %TEMP%\ThyroidReview-selftest.txt (the windowed app has no console).
procedure CurStepChanged(CurStep: TSetupStep);
var
  ResultCode: Integer;
  Summary: AnsiString;
begin
  if CurStep = ssPostInstall then
  begin
    WizardForm.StatusLabel.Caption := 'Checking the installation (self-test)...';
    if (not Exec(ExpandConstant('{app}\{#AppExe}'), '--selftest', '', SW_HIDE,
                 ewWaitUntilTerminated, ResultCode)) or (ResultCode <> 0) then
    begin
      if not LoadStringFromFile(ExpandConstant('{%TEMP}\ThyroidReview-selftest.txt'), Summary) then
        Summary := 'the self-test could not run';
      MsgBox('Thyroid Review was installed, but its self-test failed:' + #13#10 + String(Summary),
             mbError, MB_OK);
    end;
  end;
end;
