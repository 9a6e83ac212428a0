use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::TypesError;

/// What kind of device a node is; drives its default post-quantum profile and ACL selectors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceClass {
    /// A rack server or VM (anchors are servers).
    Server,
    /// A robot or vehicle.
    Robot,
    /// An edge gateway or industrial PC.
    Gateway,
    /// A constrained sensor or microcontroller-class device.
    Sensor,
}

impl DeviceClass {
    /// Every class, in code order.
    pub const ALL: [Self; 4] = [Self::Server, Self::Robot, Self::Gateway, Self::Sensor];

    /// The stable one-byte code used in signed encodings. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Server => 1,
            Self::Robot => 2,
            Self::Gateway => 3,
            Self::Sensor => 4,
        }
    }

    /// The class for a code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The lowercase name used in the CLI, the API and ACL selectors.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Robot => "robot",
            Self::Gateway => "gateway",
            Self::Sensor => "sensor",
        }
    }

    /// The post-quantum profile a node of this class gets unless policy says otherwise.
    pub const fn default_pq_profile(self) -> PqProfile {
        match self {
            Self::Sensor => PqProfile::Constrained,
            Self::Server | Self::Robot | Self::Gateway => PqProfile::Standard,
        }
    }
}

impl fmt::Display for DeviceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DeviceClass {
    type Err = TypesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == text)
            .ok_or_else(|| TypesError::UnknownVariant {
                kind: "device class",
                value: crate::error::quote(text),
                expected: "server, robot, gateway, sensor",
            })
    }
}

/// Which post-quantum algorithms a node's sessions and signatures use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PqProfile {
    /// ML-KEM-768 + ML-DSA-65 (NIST level 3): the default.
    Standard,
    /// ML-KEM-512 + ML-DSA-44 (NIST level 1/2): for constrained devices.
    Constrained,
}

impl PqProfile {
    /// Every profile, in code order.
    pub const ALL: [Self; 2] = [Self::Standard, Self::Constrained];

    /// The stable one-byte code used in signed encodings. Never renumber.
    pub const fn code(self) -> u8 {
        match self {
            Self::Standard => 1,
            Self::Constrained => 2,
        }
    }

    /// The profile for a code, if it is one.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }

    /// The lowercase name used in the CLI and the API.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Standard => "standard",
            Self::Constrained => "constrained",
        }
    }
}

impl fmt::Display for PqProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PqProfile {
    type Err = TypesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| TypesError::UnknownVariant {
                kind: "post-quantum profile",
                value: crate::error::quote(text),
                expected: "standard, constrained",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_roundtrip() {
        for class in DeviceClass::ALL {
            assert_eq!(DeviceClass::from_code(class.code()), Some(class));
            assert_eq!(class.name().parse::<DeviceClass>().unwrap(), class);
        }
        for profile in PqProfile::ALL {
            assert_eq!(PqProfile::from_code(profile.code()), Some(profile));
            assert_eq!(profile.name().parse::<PqProfile>().unwrap(), profile);
        }
        assert_eq!(DeviceClass::from_code(0), None);
        assert!("toaster".parse::<DeviceClass>().is_err());
        assert_eq!(
            DeviceClass::Sensor.default_pq_profile(),
            PqProfile::Constrained
        );
    }
}
